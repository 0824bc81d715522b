// Push fan-out on whirlwind: a socket-actor server (the actor echo of
// examples/echo-actor.mjs; no turn runs here) whose main thread broadcasts
// one PUSH to every connection, <rounds> times, on each "go <rounds> <connections>" line
// on stdin.  Same frame bytes as fanout-net.mjs.
//
//   node bench/servers/fanout-whirlwind.mjs --port <p> [--host <h>] [--size <bytes>] [--backend <name>]
import { createInterface } from 'node:readline';
import { listen } from '../../dist/src/index.js';
import { exitOnSignals, intOption, parseServerArgs } from './common.mjs';
import { TOPIC, pushBody } from './fanout-frame.mjs';

const opts = parseServerArgs('fanout-whirlwind', { size: { type: 'string', default: '64' }, backend: { type: 'string', default: 'auto' } });
const body = pushBody(intOption('fanout-whirlwind', opts, 'size', 0, 1 << 20));
let server;
try {
  server = await listen({
    actor: new URL('../../examples/echo-actor.mjs', import.meta.url),
    host: opts.host,
    port: opts.port,
    backend: opts.backend,
    minWorkers: 1,
    maxWorkers: 1,
  });
} catch (err) {
  process.stderr.write(`fanout-whirlwind: ${err.message}\n`);
  process.exit(1);
}
console.log(`fanout-whirlwind listening on ${server.address} port ${server.port} backend=${server.backend}`);
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = /^go (\d+) (\d+)$/.exec(line.trim());
  if (m) whenConnected(Number(m[2]), () => go(Number(m[1])));
});

// The client may have finished connecting before this process accepted
// every connection: wait (bounded) until all of them are here.
function whenConnected(n, then, deadline = Date.now() + 30_000) {
  if (server.onlineCount >= n || Date.now() > deadline) then();
  else setTimeout(() => whenConnected(n, then, deadline), 5);
}

function go(rounds) {
  const start = process.hrtime.bigint(); // CLOCK_MONOTONIC, as ww_loadgen's first_ns/last_ns
  const t0 = performance.now();
  let n = 0;
  for (let r = 0; r < rounds; r++) n += server.broadcast(TOPIC, body);
  console.log(`pushed ${n} in ${(performance.now() - t0).toFixed(1)} ms start_ns=${start}`);
}
exitOnSignals(() => server.close({ deadlineMs: 1000 }));
