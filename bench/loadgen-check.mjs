#!/usr/bin/env node
// Is the load generator the bottleneck?  Runs bench/run.mjs twice over the
// same servers and shapes, once with 1 load generator thread and once with 2,
// and prints, side by side, the rate and the CPU the load generator and the
// server used, and each server's rate as a share of the trivial C echo
// server's (the most the load generator has been seen to drive).
// bench/README.md explains how to read it.
//
//   npm run bench:loadgen-check [-- --only c-echo,net,whirlwind-epoll --shapes 100x1,100x16,1000x1 --repeat 3]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'c-echo,net,whirlwind-epoll' },
    shapes: { type: 'string', default: '100x1,100x16,1000x1' },
    repeat: { type: 'string', default: '3' },
    duration: { type: 'string', default: '1.5' },
    'quiet-wait': { type: 'string', default: '10' },
    'disturbance-budget': { type: 'string', default: '60' },
  },
  strict: true,
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-loadgen-check-'));
const runs = {};
for (const threads of [1, 2]) {
  const json = path.join(tmp, `t${threads}.json`);
  const argv = [path.join(HERE, 'run.mjs'), '--only', args.only, '--shapes', args.shapes, '--repeat', args.repeat,
    '--duration', args.duration, '--quiet-wait', args['quiet-wait'], '--disturbance-budget', args['disturbance-budget'],
    '--loadgen-threads', String(threads), '--out', path.join(tmp, `t${threads}.md`),
    '--json', json];
  console.log(`$ node ${path.relative(process.cwd(), argv[0])} ${argv.slice(1, -4).join(' ')}`);
  const r = spawnSync(process.execPath, argv, { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) {
    console.error(`run.mjs failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
  runs[threads] = JSON.parse(fs.readFileSync(json, 'utf8')).summaries;
}
fs.rmSync(tmp, { recursive: true, force: true });

const fmtRate = (r) => (Number.isFinite(r) ? (r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : `${(r / 1e3).toFixed(1)}k`) : '-');
const pct = (x) => (Number.isFinite(x) ? `${x.toFixed(0)}%` : '-');
const rows = {};
const keys = Object.keys(runs[1]).sort((x, y) => x.split('|')[1].localeCompare(y.split('|')[1]));
for (const key of keys) {
  const [a, b] = [runs[1][key], runs[2][key]];
  if (a.reason || b.reason) continue;
  const [server, shape] = key.split('|');
  const c = runs[1][`c-echo|${shape}`];
  rows[`${shape} ${server}`] = {
    '1 thread rate': fmtRate(a.rate),
    'loadgen CPU': pct(a.loadgenCpu),
    'server CPU': pct(a.serverCpu),
    'of C echo rate': c && !c.reason ? pct((100 * a.rate) / c.rate) : '-',
    'loadgen-bound?': a.loadgenCpu >= 95 ? 'yes (loadgen at 100%)' : 'no',
    '2 threads rate': fmtRate(b.rate),
    'loadgen CPU ': pct(b.loadgenCpu),
    'server CPU ': pct(b.serverCpu),
    '2t / 1t': `${(b.rate / a.rate).toFixed(2)}x`,
  };
}
console.log('\nLoad generator threads 1 vs 2 (medians; CPU in % of one core, 200% = both cores)');
console.table(rows);
console.log(`Read: a server's 1-thread rate is bounded by the load generator when the load
generator ran at ~100% of its core ('loadgen-bound?'); below that, the one
thread had spare time and the server set the pace.  'of C echo rate' shows how
far the server is from the trivial C server driven by the same load generator.`);
