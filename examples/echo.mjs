#!/usr/bin/env node
// Actor echo: every REQUEST "echo" runs as a socket-actor turn on the worker
// pool and is answered with its own body.  The benchmarks drive it.
//
//   node examples/echo.mjs --port <p> [--host <addr>] [--work-us <n>] [--workers <n>] [--backend <name>] [--io-threads <n>]
//
// Prints one line containing "listening" when ready; exits cleanly on SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import { listen } from 'whirlwind';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '7000' },
    host: { type: 'string', default: '127.0.0.1' },
    backend: { type: 'string', default: 'auto' },
    'io-threads': { type: 'string' },
    'work-us': { type: 'string', default: '0' },
    workers: { type: 'string' },
  },
});

const workUs = Number(values['work-us']);
if (!Number.isInteger(workUs) || workUs < 0) {
  console.error(`echo: --work-us must be an integer >= 0, got '${values['work-us']}'`);
  process.exit(2);
}
const actor = new URL(`./echo-actor.mjs?workUs=${workUs}`, import.meta.url);
const workers = values.workers === undefined ? undefined : Number(values.workers);

let server;
try {
  server = await listen({
    actor,
    host: values.host,
    port: Number(values.port),
    backend: values.backend,
    ...(values['io-threads'] ? { ioThreads: Number(values['io-threads']) } : {}),
    ...(workers !== undefined ? { maxWorkers: workers, minWorkers: workers } : {}),
  });
} catch (err) {
  console.error(`echo: ${err.message}`);
  process.exit(1);
}

console.log(
  `actor-echo listening on ${server.address}:${server.port} backend=${server.backend} ` +
    `workers=${server.options.minWorkers}..${server.options.maxWorkers} work-us=${workUs}`,
);

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    server.close({ deadlineMs: 1000 }).then(() => process.exit(0));
  });
}
