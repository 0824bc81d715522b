// Protocol twin of examples/echo.mjs on node cluster: one process per core
// (or --workers), each running proto-net-echo.
//
//   node bench/servers/proto-cluster-echo.mjs --port <p> [--host <h>] [--work-us <n>] [--workers <n>]
import cluster from 'node:cluster';
import os from 'node:os';
import { exitOnSignals, intOption, parseServerArgs } from './common.mjs';
import { createProtoEchoServer } from './proto-net-echo.mjs';

const opts = parseServerArgs('proto-cluster-echo', { workers: { type: 'string' } });
const workers = intOption('proto-cluster-echo', opts, 'workers', 1, 256) ?? os.availableParallelism();

if (cluster.isPrimary) {
  let listening = 0;
  let stopping = false;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('listening', (address) => {
      if (++listening === workers) {
        console.log(`proto-cluster-echo listening on ${opts.host} port ${address.port} (${workers} workers, work-us ${opts.workUs})`);
      }
    });
  }
  cluster.on('exit', (w, code, signal) => {
    if (!stopping) {
      process.stderr.write(`proto-cluster-echo: worker ${w.process.pid} died (${signal ?? code})\n`);
      process.exit(1);
    }
  });
  const onSignal = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    const timer = setTimeout(() => process.exit(0), 2000);
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers).length === 0) {
        clearTimeout(timer);
        process.exit(0);
      }
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
} else {
  const server = createProtoEchoServer(opts.workUs);
  server.listen({ port: opts.port, host: opts.host, backlog: 4096 });
  exitOnSignals(() => server.close());
}
