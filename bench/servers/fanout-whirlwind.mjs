// Push fan-out on whirlwind: a socket-actor server (the actor echo of
// examples/echo-actor.mjs; no turn runs here) whose main thread broadcasts
// one PUSH to every connection, <rounds> times, on each "go <rounds> <connections>" line
// on stdin.  Same frame bytes as fanout-net.mjs.
//
//   node bench/servers/fanout-whirlwind.mjs --port <p> [--host <h>] [--size <bytes>] [--backend <name>]
import { listen } from '../../dist/src/index.js';
import { exitOnSignals, intOption, parseServerArgs } from './common.mjs';
import { TOPIC, onGo, pushBody } from './fanout-frame.mjs';

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
onGo(
  () => server.onlineCount,
  () => server.broadcast(TOPIC, body),
);
exitOnSignals(() => server.close({ deadlineMs: 1000 }));
