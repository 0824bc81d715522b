// Baseline: node cluster, one process per core, each running the net-echo
// server (replies batched per chunk).  Node's default cluster scheduling on
// Linux is round-robin: the primary accepts and hands connections out.
//
//   node bench/servers/cluster-echo.mjs --port <p> [--host <h>] [--work-us <n>] [--workers <n>]
import cluster from 'node:cluster';
import os from 'node:os';
import { createEchoServer } from './net-echo.mjs';
import { exitOnSignals, intOption, parseServerArgs } from './common.mjs';

const opts = parseServerArgs('cluster-echo', { workers: { type: 'string' } });
const workers = intOption('cluster-echo', opts, 'workers', 1, 256) ?? os.availableParallelism();

if (cluster.isPrimary) {
  let listening = 0;
  let port = opts.port;
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork();
    w.on('listening', (address) => {
      port = address.port;
      if (++listening === workers) {
        console.log(`cluster-echo listening on ${opts.host} port ${port} (${workers} workers, work-us ${opts.workUs})`);
      }
    });
  }
  cluster.on('exit', (w, code, signal) => {
    if (!stopping) {
      process.stderr.write(`cluster-echo: worker ${w.process.pid} died (${signal ?? code})\n`);
      process.exit(1);
    }
  });
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
  };
  // Wait (briefly) for the workers so none outlives the primary.
  const onSignal = () => {
    stop();
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
  const server = createEchoServer(opts.workUs);
  server.listen({ port: opts.port, host: opts.host, backlog: 4096 });
  exitOnSignals(() => server.close());
}
