// Baseline, the naive design: node:net with one piscina.run() per message.
// Replies for one incoming chunk are written together (one socket.write), in
// arrival order.
//
// piscina's defaults on 2 cores are idleTimeout 0 and maxThreads 3: under this
// load that pool keeps destroying and re-creating workers.  We pass
// idleTimeout 60000 so the numbers measure one task per message, not worker
// churn.
//
//   node bench/servers/net-piscina.mjs --port <p> [--host <h>] [--work-us <n>]
import net from 'node:net';
import { Piscina } from 'piscina';
import { exitOnSignals, onFrames, parseServerArgs } from './common.mjs';

const opts = parseServerArgs('net-piscina');
const pool = new Piscina({
  filename: new URL('./piscina-worker.mjs', import.meta.url).href,
  idleTimeout: 60_000,
});
const workUs = opts.workUs;

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => {});
  let tail = Promise.resolve();
  onFrames(socket, (whole) => {
    const tasks = [];
    for (let off = 0; off < whole.length; ) {
      const len = whole.readUInt32LE(off);
      // slice() copies, so only the frame (not the whole chunk's
      // ArrayBuffer) is structured-cloned into the worker.
      const frame = Uint8Array.prototype.slice.call(whole, off, off + 4 + len);
      tasks.push(pool.run({ frame, workUs }));
      off += 4 + len;
    }
    const batch = Promise.all(tasks);
    tail = tail
      .then(() => batch)
      .then((frames) => {
        if (!socket.destroyed) socket.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
      })
      .catch(() => socket.destroy());
  });
});
server.on('error', (err) => {
  process.stderr.write(`net-piscina: ${err.message}\n`);
  process.exit(1);
});
server.listen({ port: opts.port, host: opts.host, backlog: 4096 }, () => {
  const { port } = server.address();
  console.log(
    `net-piscina listening on ${opts.host} port ${port} (work-us ${workUs}, ` +
      `piscina maxThreads ${pool.options.maxThreads}, idleTimeout 60000)`,
  );
});
exitOnSignals(() => server.close());
