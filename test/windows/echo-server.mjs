// echo-server.mjs - the frame echo server linux-clients.mjs runs under Wine:
// raw-echo with the options the Linux-side checks need (two I/O threads,
// TCP keep-alive, so `ss` on the Linux side can see the timer the Windows
// build set with SIO_KEEPALIVE_VALS).  Prints one "listening" line.
import { listenRaw } from 'whirlwind';

const server = listenRaw(
  { host: '127.0.0.1', port: 0, ioThreads: 2, keepAliveMs: 30_000 },
  {
    frame(conn, data) {
      server.send(conn, data);
    },
  },
);
console.log(`echo-server listening on ${server.address}:${server.port} backend=${server.backend}`);
