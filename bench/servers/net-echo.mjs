// Baseline: plain node:net echo of the u32-LE length-prefixed framing, with
// replies batched per incoming chunk (one socket.write per 'data' event).
//
//   node bench/servers/net-echo.mjs --port <p> [--host <h>] [--work-us <n>]
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { burnUs, exitOnSignals, onFrames, parseServerArgs } from './common.mjs';

/** Creates the echo server; shared with cluster-echo.mjs. */
export function createEchoServer(workUs) {
  return net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {});
    onFrames(socket, (whole, count) => {
      if (workUs > 0) for (let i = 0; i < count; i++) burnUs(workUs);
      // Backpressure: stop reading while the kernel will not take replies.
      if (!socket.write(whole)) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
    });
  });
}

// Run only when started directly, not when cluster-echo.mjs imports it.
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseServerArgs('net-echo');
  const server = createEchoServer(opts.workUs);
  server.on('error', (err) => {
    process.stderr.write(`net-echo: ${err.message}\n`);
    process.exit(1);
  });
  // Node's default backlog (511) overflows when thousands connect at once.
  server.listen({ port: opts.port, host: opts.host, backlog: 4096 }, () => {
    const { port } = server.address();
    console.log(`net-echo listening on ${opts.host} port ${port} (work-us ${opts.workUs})`);
  });
  exitOnSignals(() => server.close());
}
