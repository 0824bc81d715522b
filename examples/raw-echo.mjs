#!/usr/bin/env node
// Raw echo: every frame straight back from the ring, on the main thread, no
// worker pool.  The engine's own benchmark target.
//
//   node examples/raw-echo.mjs --port <p> [--host <addr>] [--backend <name>] [--io-threads <n>]
//                              [--work-us <n>] [--stats]
//
// Prints one line containing "listening" and the backend name when ready;
// exits cleanly on SIGINT/SIGTERM.  With --stats it prints, just before
// exiting, one line `STATS {json}`: the engine's counters (server.stats())
// plus `jsBatches`, the number of batches the JS thread drained (batchEnd
// calls), so a benchmark can tell frames per wake-up.
import { parseArgs } from 'node:util';
import { listenRaw } from 'whirlwind';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '7000' },
    host: { type: 'string', default: '127.0.0.1' },
    backend: { type: 'string', default: 'auto' },
    'io-threads': { type: 'string' },
    'work-us': { type: 'string', default: '0' },
    stats: { type: 'boolean', default: false },
  },
});

const workUs = Number(values['work-us']);
// The same busy wait as the benchmark's rivals (bench/servers/common.mjs):
// performance.now() allocates nothing, where hrtime.bigint() makes a BigInt
// per call and so brings the garbage collector into the measured work.
function burn(us) {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

let server;
let jsBatches = 0;
try {
  server = listenRaw(
    {
      host: values.host,
      port: Number(values.port),
      backend: values.backend,
      ...(values['io-threads'] ? { ioThreads: Number(values['io-threads']) } : {}),
    },
    {
      frame(conn, data) {
        if (workUs > 0) burn(workUs);
        server.send(conn, data);
      },
      ...(values.stats ? { batchEnd() { jsBatches++; } } : {}),
    },
  );
} catch (err) {
  console.error(`raw-echo: ${err.message}`);
  process.exit(1);
}

console.log(
  `raw-echo listening on ${server.family === 6 ? `[${server.address}]` : server.address}:${server.port} backend=${server.backend} ioThreads=${server.options.ioThreads}`,
);

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    if (values.stats) console.log(`STATS ${JSON.stringify({ ...server.stats(), jsBatches })}`);
    server.close().then(() => process.exit(0));
  });
}
