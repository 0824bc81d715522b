// Push fan-out rival on plain node:net: on each "go <rounds> <connections>" line on stdin,
// write the same pre-encoded whirlwind PUSH frame (a 64-byte body by
// default) to every connected socket, <rounds> times: the loop a Node user
// would write.  Prints "listening" when ready and "pushed <n> in <ms> start_ns=<t>" after
// each go (once that many connections are here).
//
//   node bench/servers/fanout-net.mjs --port <p> [--host <h>] [--size <bytes>]
import net from 'node:net';
import { exitOnSignals, intOption, parseServerArgs } from './common.mjs';
import { onGo, pushFrame } from './fanout-frame.mjs';

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
onGo(
  () => sockets.size,
  () => {
    for (const s of sockets) s.write(frame);
    return sockets.size;
  },
);
exitOnSignals(() => server.close());
