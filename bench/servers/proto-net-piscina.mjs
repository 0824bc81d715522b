// Protocol twin of examples/echo.mjs in the naive design: node:net with one
// piscina.run() per message.  The worker decodes, handles and encodes; the
// main thread frames, and writes a chunk's answers together, in order.
// idleTimeout 60 s so the numbers measure one task per message, not worker
// churn (piscina's default of 0 re-creates workers under this load).
//
//   node bench/servers/proto-net-piscina.mjs --port <p> [--host <h>] [--work-us <n>]
import net from 'node:net';
import { Piscina } from 'piscina';
import { exitOnSignals, onFrames, parseServerArgs } from './common.mjs';

const opts = parseServerArgs('proto-net-piscina');
const pool = new Piscina({
  filename: new URL('./proto-piscina-worker.mjs', import.meta.url).href,
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
      // slice() copies: only this frame is cloned into the worker.
      if (len > 0) tasks.push(pool.run({ frame: Uint8Array.prototype.slice.call(whole, off + 4, off + 4 + len), workUs }));
      off += 4 + len;
    }
    const batch = Promise.all(tasks);
    tail = tail
      .then(() => batch)
      .then((answers) => {
        if (!socket.destroyed) socket.write(answers.length === 1 ? answers[0] : Buffer.concat(answers));
      })
      .catch(() => socket.destroy());
  });
});
server.on('error', (err) => {
  process.stderr.write(`proto-net-piscina: ${err.message}\n`);
  process.exit(1);
});
server.listen({ port: opts.port, host: opts.host, backlog: 4096 }, () => {
  console.log(
    `proto-net-piscina listening on ${opts.host} port ${server.address().port} (work-us ${workUs}, ` +
      `piscina maxThreads ${pool.options.maxThreads}, idleTimeout 60000)`,
  );
});
exitOnSignals(() => server.close());
