// Push fan-out rival on plain node:net: on each "go <rounds> <connections>" line on stdin,
// write the same pre-encoded whirlwind PUSH frame (a 64-byte body by
// default) to every connected socket, <rounds> times: the loop a Node user
// would write.  Prints "listening" when ready and "pushed <n> in <ms> start_ns=<t>" after
// each go (once that many connections are here).
//
//   node bench/servers/fanout-net.mjs --port <p> [--host <h>] [--size <bytes>]
import net from 'node:net';
import { createInterface } from 'node:readline';
import { exitOnSignals, intOption, parseServerArgs } from './common.mjs';
import { pushFrame } from './fanout-frame.mjs';

const opts = parseServerArgs('fanout-net', { size: { type: 'string', default: '64' } });
const frame = pushFrame(intOption('fanout-net', opts, 'size', 0, 1 << 20));
const sockets = new Set();
const server = net.createServer({ noDelay: true }, (socket) => {
  sockets.add(socket);
  socket.on('error', () => {});
  socket.on('close', () => sockets.delete(socket));
  socket.resume(); // a client that writes is not this benchmark's concern
});
server.on('error', (err) => {
  process.stderr.write(`fanout-net: ${err.message}\n`);
  process.exit(1);
});
server.listen({ port: opts.port, host: opts.host, backlog: 65535 }, () => {
  console.log(`fanout-net listening on ${opts.host} port ${server.address().port}`);
});
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = /^go (\d+) (\d+)$/.exec(line.trim());
  if (m) whenConnected(Number(m[2]), () => go(Number(m[1])));
});

// The client may have finished connecting before this process accepted
// every connection: wait (bounded) until all of them are here.
function whenConnected(n, then, deadline = Date.now() + 30_000) {
  if (sockets.size >= n || Date.now() > deadline) then();
  else setTimeout(() => whenConnected(n, then, deadline), 5);
}

function go(rounds) {
  const start = process.hrtime.bigint(); // CLOCK_MONOTONIC, as ww_loadgen's first_ns/last_ns
  const t0 = performance.now();
  let n = 0;
  for (let r = 0; r < rounds; r++) {
    for (const s of sockets) {
      s.write(frame);
      n++;
    }
  }
  console.log(`pushed ${n} in ${(performance.now() - t0).toFixed(1)} ms start_ns=${start}`);
}
exitOnSignals(() => server.close());
