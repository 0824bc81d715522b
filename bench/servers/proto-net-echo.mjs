// Protocol twin of examples/echo.mjs on plain node:net, one thread: decode,
// handle and encode on the main thread, replies batched per incoming chunk.
//
//   node bench/servers/proto-net-echo.mjs --port <p> [--host <h>] [--work-us <n>]
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { exitOnSignals, onFrames, parseServerArgs } from './common.mjs';
import { makeCodec } from './proto-echo.mjs';

/** Creates the protocol echo server; shared with proto-cluster-echo.mjs. */
export function createProtoEchoServer(workUs) {
  const { handleFrames } = makeCodec();
  return net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {});
    onFrames(socket, (whole) => {
      const out = handleFrames(whole, workUs);
      if (out && !socket.write(out)) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseServerArgs('proto-net-echo');
  const server = createProtoEchoServer(opts.workUs);
  server.on('error', (err) => {
    process.stderr.write(`proto-net-echo: ${err.message}\n`);
    process.exit(1);
  });
  server.listen({ port: opts.port, host: opts.host, backlog: 4096 }, () => {
    console.log(`proto-net-echo listening on ${opts.host} port ${server.address().port} (work-us ${opts.workUs})`);
  });
  exitOnSignals(() => server.close());
}
