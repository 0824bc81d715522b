#!/usr/bin/env node
// Benchmark runner: every server against the native load generator, over
// loopback, servers alternating within one run; prints ratio tables to plain
// node:net and writes bench/RESULTS.md.  See bench/README.md.
//
//   npm run bench                     default run (about 4 minutes)
//   npm run bench:quick               under a minute
//   node bench/run.mjs --only net,c-echo --shapes 100x1,100x16 --repeat 3
//   node bench/run.mjs --backend io_uring      whirlwind on one backend only
//                                               (default: WHIRLWIND_BACKEND, else all)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'build', 'Release');
const LOADGEN = path.join(BIN, 'ww_loadgen');
const REFERENCE = 'net'; // ratios are relative to plain node:net

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

const DEFAULTS = Object.freeze({
  duration: 1.5, // measured seconds per run
  maxOtherCpu: 25, // a run during which other processes used more (% of one core) is re-run
  retries: 2, // re-runs of a disturbed run before keeping it anyway
  quietWait: 10, // seconds to wait, before each run, for other processes to calm down
  // Seconds that quiet-waiting and re-runs may add to the whole run; once
  // spent, runs go ahead at once and disturbed runs are kept (and listed).
  // Keeps a run on a busy machine bounded.
  disturbanceBudget: 90,
  warmup: 0.5,
  // The full-protocol rows (the actor echo and its three twins) warm up
  // longer: the actor server compiles its hot code in three isolates (main
  // thread and two workers) while the load holds both cores, so V8's
  // background compiler threads get little CPU and the server reaches its
  // steady rate late.  Back-to-back 1.5 s runs against one fresh server (3
  // rounds, 100x1-work100): the actor climbs for about 7 s (median 11.3k,
  // 14.4k, 14.6k, 15.4k, 16.0k, 15.8k, 16.3k/s in runs starting 0, 1.7, 3.4
  // ... 10.2 s after start) where proto-cluster is flat after 2 s (13.8k,
  // then 15.7k-16.3k); its V8 helper threads' CPU per request fell from about
  // 30 us to under 2 us over the same time (one run).  0.5 s, then 3 s, measured it mid-climb.
  // Every row of the family gets the same warm-up (bench/README.md).
  protocolWarmup: 8,
  repeat: 3, // runs per (server, shape); the tables show medians
  loadgenThreads: 1, // the server needs the other core
  memConns: 10_000,
  host: '127.0.0.1',
  basePort: 17_300,
});
const QUICK = Object.freeze({
  duration: 0.5, warmup: 0.2, protocolWarmup: 1, repeat: 1, quietWait: 1, retries: 0, disturbanceBudget: 10,
  shapes: ['1x1', '100x1', '100x16', '100x1-work100'],
});
// whirlwind's Linux backends; each gets its own row, and one the addon's
// probe calls unavailable is listed as skipped with the probe's reason.
const LINUX_BACKENDS = ['epoll', 'io_uring'];

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    shapes: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'protocol-warmup': { type: 'string' },
    repeat: { type: 'string' },
    'loadgen-threads': { type: 'string' },
    'mem-conns': { type: 'string' },
    'io-threads': { type: 'string' },
    backend: { type: 'string' },
    host: { type: 'string' },
    'base-port': { type: 'string' },
    'quiet-wait': { type: 'string' },
    'skip-fanout': { type: 'boolean', default: false },
    'disturbance-budget': { type: 'string' },
    out: { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

function printHelp() {
  console.log(`usage: node bench/run.mjs [options]
  --quick                 short run: ${QUICK.shapes.join(', ')}; ${QUICK.duration} s per run, no memory shape
  --skip-fanout           leave out the push fan-out (bench/fanout.mjs; also left out by --quick and --only)
  --only <a,b,...>        servers to run (default all): ${servers.map((s) => s.name).join(', ')}
  --shapes <a,b,...>      shapes to run (default all): ${shapes.map((s) => s.id).join(', ')}
  --duration <s>          measured seconds per run (default ${DEFAULTS.duration})
  --warmup <s>            unmeasured seconds before each run (default ${DEFAULTS.warmup})
  --protocol-warmup <s>   the same for the full-protocol rows: actor and its twins (default
                          ${DEFAULTS.protocolWarmup}, ${QUICK.protocolWarmup} with --quick)
  --repeat <n>            runs per server and shape; medians are shown (default ${DEFAULTS.repeat})
  --loadgen-threads <n>   load generator threads (default ${DEFAULTS.loadgenThreads})
  --mem-conns <n>         idle connections for the memory shape (default ${DEFAULTS.memConns})
  --io-threads <n>        passed to whirlwind's raw echo as --io-threads
  --backend <name|all>    whirlwind backend(s) to run: ${LINUX_BACKENDS.join(', ')} or all (default: the
                          WHIRLWIND_BACKEND environment variable, else all); an unavailable one is
                          listed as skipped with the reason the probe gives
  --host <addr>           loopback address (default ${DEFAULTS.host})
  --base-port <p>         first port; each server start takes the next (default ${DEFAULTS.basePort})
  --quiet-wait <s>        before each run, wait up to s seconds while other processes use over
                          ${DEFAULTS.maxOtherCpu}% of a core (default ${DEFAULTS.quietWait}, ${QUICK.quietWait} with --quick; 0 = never)
  --disturbance-budget <s> seconds that quiet-waiting and re-running disturbed runs may add in all
                          (default ${DEFAULTS.disturbanceBudget}, ${QUICK.disturbanceBudget} with --quick); then disturbed runs are kept
  --out <file>            results file (default bench/RESULTS.md)
  --json <file>           also write the median summaries as JSON (for other scripts)`);
}

function numberOption(key, fallback, { integer = false, min = 0 } = {}) {
  if (args[key] === undefined) return fallback;
  const n = Number(args[key]);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    console.error(`run.mjs: --${key} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got '${args[key]}'`);
    process.exit(2);
  }
  return n;
}

const opts = {
  duration: numberOption('duration', args.quick ? QUICK.duration : DEFAULTS.duration, { min: 0.1 }),
  warmup: numberOption('warmup', args.quick ? QUICK.warmup : DEFAULTS.warmup),
  protocolWarmup: numberOption('protocol-warmup', args.quick ? QUICK.protocolWarmup : DEFAULTS.protocolWarmup),
  repeat: numberOption('repeat', args.quick ? QUICK.repeat : DEFAULTS.repeat, { integer: true, min: 1 }),
  loadgenThreads: numberOption('loadgen-threads', DEFAULTS.loadgenThreads, { integer: true, min: 1 }),
  memConns: numberOption('mem-conns', DEFAULTS.memConns, { integer: true, min: 1 }),
  ioThreads: numberOption('io-threads', undefined, { integer: true, min: 1 }),
  host: args.host ?? DEFAULTS.host,
  basePort: numberOption('base-port', DEFAULTS.basePort, { integer: true, min: 1024 }),
  quietWait: numberOption('quiet-wait', args.quick ? QUICK.quietWait : DEFAULTS.quietWait),
  retries: args.quick ? QUICK.retries : DEFAULTS.retries,
  disturbanceBudget: numberOption('disturbance-budget', args.quick ? QUICK.disturbanceBudget : DEFAULTS.disturbanceBudget),
  backend: args.backend ?? (process.env.WHIRLWIND_BACKEND || 'all'),
  out: path.resolve(args.out ?? path.join(ROOT, 'bench', 'RESULTS.md')),
};

if (opts.backend !== 'all' && opts.backend !== 'auto' && !LINUX_BACKENDS.includes(opts.backend)) {
  console.error(`run.mjs: --backend (or WHIRLWIND_BACKEND) must be all or one of ${LINUX_BACKENDS.join(', ')}, got '${opts.backend}'`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Servers and shapes
// ---------------------------------------------------------------------------

// Ask the addon which backends this machine has, the way the engine itself
// decides (src/backends.ts).  Needs the compiled TypeScript (npm install).
let probe = null;
let probeError = '';
try {
  const { probeBackends } = await import('../dist/src/index.js');
  probe = new Map(probeBackends().map((b) => [b.name, b]));
} catch (err) {
  probeError = `whirlwind did not load: ${err.message}`.slice(0, 300);
}

const node = process.execPath;
const servers = [
  { name: 'c-echo', label: 'C epoll, 1 thread', cmd: [path.join(BIN, 'ww_c_echo')], memory: true },
  { name: 'c-echo-2t', label: 'C epoll, 2 SO_REUSEPORT threads', cmd: [path.join(BIN, 'ww_c_echo'), '--threads', '2'] },
  { name: 'net', label: 'node:net, one write per chunk', cmd: [node, 'bench/servers/net-echo.mjs'], memory: true },
  { name: 'net-piscina', label: 'node:net + piscina.run() per message', cmd: [node, 'bench/servers/net-piscina.mjs'] },
  // children: the work runs in child processes (no main/other thread split).
  { name: 'cluster', label: 'node cluster, 2 processes', cmd: [node, 'bench/servers/cluster-echo.mjs', '--workers', '2'], children: true },
  // whirlwind's raw echo, once per backend; a backend the machine lacks is
  // reported as skipped.
  // The backend is named twice on purpose: --backend for raw-echo's
  // listenRaw, WHIRLWIND_BACKEND for anything that uses 'auto'.
  ...LINUX_BACKENDS.filter((b) => opts.backend === 'all' || opts.backend === 'auto' || b === opts.backend)
    .map((backend) => ({
      name: `whirlwind-${backend}`,
      label: `whirlwind raw echo, ${backend}`,
      backend,
      env: { WHIRLWIND_BACKEND: backend },
      cmd: [node, 'examples/raw-echo.mjs', '--backend', backend, '--stats',
        ...(opts.ioThreads ? ['--io-threads', String(opts.ioThreads)] : [])],
      memory: true,
      stats: true,
    })),
  // The full protocol: the actor echo (examples/echo.mjs, socket actors on
  // the worker pool) and the same application, with the same protocol and
  // codec, on plain node:net, node:net + piscina.run() per message and node
  // cluster.  ww_loadgen replays one pre-encoded REQUEST
  // (bench/frames/echo-64.bin, a 64-byte body) and counts each whole frame
  // back as its reply.  Ratios in these rows are to 'proto-net'.  Only the
  // shapes the actor issue sets targets for, to keep the run short.
  ...[
    { name: 'actor', label: 'whirlwind actor echo (full protocol, worker pool)', cmd: [node, 'examples/echo.mjs'] },
    { name: 'proto-net', label: 'same protocol on node:net, one thread', cmd: [node, 'bench/servers/proto-net-echo.mjs'] },
    { name: 'proto-net-piscina', label: 'same protocol, node:net + piscina.run() per message', cmd: [node, 'bench/servers/proto-net-piscina.mjs'] },
    { name: 'proto-cluster', label: 'same protocol, node cluster, 2 processes', cmd: [node, 'bench/servers/proto-cluster-echo.mjs', '--workers', '2'], children: true },
  ].map((x) => ({ ...x, frameFile: 'bench/frames/echo-64.bin', ref: 'proto-net', shapes: ['100x1', '100x1-work100'], warmup: opts.protocolWarmup })),
];

const shapes = [
  { id: '1x1', conns: 1, pipeline: 1, workUs: 0, about: '1 connection, 1 request in flight (latency)' },
  { id: '100x1', conns: 100, pipeline: 1, workUs: 0, about: '100 connections, 1 in flight each' },
  { id: '100x16', conns: 100, pipeline: 16, workUs: 0, about: '100 connections, 16 pipelined each' },
  { id: '1000x1', conns: 1000, pipeline: 1, workUs: 0, about: '1000 connections, 1 in flight each' },
  { id: '100x1-work100', conns: 100, pipeline: 1, workUs: 100, about: '100 x 1, server burns 100 us CPU per message' },
  { id: 'mem', memory: true, about: `server RSS per idle connection at ${opts.memConns} connections` },
];

if (args.help) {
  printHelp();
  process.exit(0);
}

function pickList(list, csv, what) {
  if (!csv) return list;
  const want = csv.split(',').map((s) => s.trim()).filter(Boolean);
  for (const w of want) {
    if (!list.some((x) => (x.name ?? x.id) === w)) {
      console.error(`run.mjs: unknown ${what} '${w}'; known: ${list.map((x) => x.name ?? x.id).join(', ')}`);
      process.exit(2);
    }
  }
  return list.filter((x) => want.includes(x.name ?? x.id));
}

const activeServers = pickList(servers, args.only, 'server in --only');
const activeShapes = pickList(
  shapes,
  args.shapes ?? (args.quick ? QUICK.shapes.join(',') : undefined),
  'shape in --shapes',
);

for (const bin of [LOADGEN, ...activeServers.filter((s) => s.name.startsWith('c-echo')).map((s) => s.cmd[0])]) {
  if (!fs.existsSync(bin)) {
    console.error(`run.mjs: ${path.relative(ROOT, bin)} is missing; build it with 'npm install' (node-gyp rebuild)`);
    process.exit(2);
  }
}

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let nextPort = opts.basePort;

/** Sum of utime+stime clock ticks over a process and all its descendants. */
function treeCpuTicks(pid) {
  let ticks = 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]); // fields 14 and 15: utime, stime
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const kids = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const kid of kids ? kids.split(' ') : []) ticks += treeCpuTicks(Number(kid));
    }
  } catch {
    // the process is gone
  }
  return ticks;
}
const TICKS_PER_S = 100; // USER_HZ on Linux

/**
 * Nanoseconds the threads of a process and its descendants spent runnable
 * but waiting for a core: schedstat's second field (run_delay), summed over
 * every thread.  A thread that ends between two readings takes its share
 * with it.  NaN where the kernel keeps no schedstats.
 */
const HAVE_SCHEDSTAT = fs.existsSync('/proc/self/schedstat');
function treeRunDelayNs(pid) {
  if (!HAVE_SCHEDSTAT) return NaN;
  let ns = 0;
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
        const kids = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
        for (const kid of kids ? kids.split(' ') : []) ns += treeRunDelayNs(Number(kid));
      } catch {
        // the thread ended
      }
    }
  } catch {
    // the process is gone
  }
  return ns;
}

/** Busy and total clock ticks of the whole machine (all CPUs), from /proc/stat. */
function machineTicks() {
  const text = fs.readFileSync('/proc/stat', 'utf8');
  const f = text.split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // Processes and threads created since boot: short-lived ones (a test
  // suite's) use CPU that no snapshot of running processes can see.
  const forks = Number((/^processes (\d+)/m.exec(text) ?? [])[1] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal; guest is inside user
  const idle = f[3] + f[4]; // idle + iowait
  // steal: time the hypervisor gave this VM's vCPUs to someone else.  It is
  // counted as busy (our run lost that time) and also shown on its own.
  return { busy: total - idle, total, steal: f[7] ?? 0, forks };
}

/**
 * CPU ticks per thread of one process: { main, others, busiest } where main
 * is the thread whose id is the pid (Node's JS thread) and busiest is the
 * busiest other thread (for whirlwind, its I/O thread; V8's helpers and
 * libuv's pool barely run during an echo).
 */
function threadTicks(pid) {
  const per = new Map();
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        per.set(Number(tid), Number(f[11]) + Number(f[12]));
      } catch {
        // the thread ended
      }
    }
  } catch {
    // the process is gone
  }
  return per;
}

function threadSplit(before, after, pid, seconds) {
  let main = 0;
  let others = 0;
  let busiest = 0;
  for (const [tid, t1] of after) {
    const d = t1 - (before.get(tid) ?? 0);
    if (tid === pid) main += d;
    else {
      others += d;
      busiest = Math.max(busiest, d);
    }
  }
  const pct = (t) => (100 * t) / TICKS_PER_S / seconds;
  return { main: pct(main), others: pct(others), busiest: pct(busiest) };
}

/** utime+stime ticks and name of every process on the machine. */
function processSnapshot() {
  const snap = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      snap.set(Number(d), { name, ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // gone
    }
  }
  return snap;
}

/** The processes (other than `exclude`) that used the most CPU between two snapshots, as text. */
function topOthers(a, b, exclude, seconds) {
  const rows = [];
  for (const [pid, x] of b) {
    if (exclude.has(pid)) continue;
    const d = x.ticks - (a.get(pid)?.ticks ?? x.ticks);
    if (d > 0) rows.push({ pid, name: x.name, pct: (100 * d) / TICKS_PER_S / seconds });
  }
  rows.sort((p, q) => q.pct - p.pct);
  const what = (r) => {
    try {
      const cmd = fs.readFileSync(`/proc/${r.pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      return cmd ? cmd.slice(0, 70) : r.name;
    } catch {
      return r.name;
    }
  };
  return rows.slice(0, 3).filter((r) => r.pct >= 2).map((r) => `${r.pct.toFixed(0)}% \`${what(r)}\``).join(', ');
}

/** Pids of a process and all its descendants. */
function treePids(pid, into = new Set()) {
  into.add(pid);
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const kids = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const kid of kids ? kids.split(' ') : []) treePids(Number(kid), into);
    }
  } catch {
    // gone
  }
  return into;
}

/**
 * The machine may be shared.  Before a run, waits (up to opts.quietWait
 * seconds) until the whole machine's busy time, sampled over 0.5 s, is under
 * DEFAULTS.maxOtherCpu percent of one core; nothing of ours is running then.
 * Returns the seconds waited.
 */
let quietWaited = 0;
let rerunSeconds = 0;
const budgetLeft = () => opts.disturbanceBudget - quietWaited - rerunSeconds;
async function waitQuiet() {
  if (budgetLeft() <= 0) return 0;
  const start = performance.now();
  for (;;) {
    const a = machineTicks();
    await sleep(500);
    const b = machineTicks();
    const busy = (100 * (b.busy - a.busy)) / TICKS_PER_S / 0.5;
    const waited = (performance.now() - start) / 1000;
    if (busy <= DEFAULTS.maxOtherCpu || waited >= opts.quietWait || waited >= budgetLeft()) {
      quietWaited += waited;
      return waited;
    }
  }
}

function vmRssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** The process's soft limit on open files (/proc/<pid>/limits), or Infinity. */
function openFileLimit(pid) {
  const m = /^Max open files\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m ? Number(m[1]) : Infinity;
}

/**
 * Starts a server and waits for its "listening" line.  Resolves to
 * { proc, port, line } or { skipped | failed: reason }.
 */
async function startServer(server, workUs) {
  // Other work on the machine may hold a port of ours: take the next one.
  for (let attempt = 0; ; attempt++) {
    const s = await startServerOnce(server, workUs);
    if (attempt >= 4 || !/EADDRINUSE|address already in use/i.test(s.failed ?? '')) return s;
  }
}

async function startServerOnce(server, workUs) {
  const script = server.cmd[0] === node ? server.cmd[1] : null;
  if (script && !fs.existsSync(path.join(ROOT, script))) return { skipped: `${script} is missing` };
  const port = nextPort++;
  const argv = [...server.cmd.slice(1), '--port', String(port), '--host', opts.host];
  if (workUs) argv.push('--work-us', String(workUs));
  const proc = spawn(server.cmd[0], argv, {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(server.env ?? {}) },
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => { if (out.length < 8192) out += d; });
  proc.stderr.on('data', (d) => { if (err.length < 8192) err += d; });
  const command = [server.cmd[0] === node ? 'node' : path.relative(ROOT, server.cmd[0]), ...argv].join(' ');
  const result = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ failed: 'no "listening" line within 15 s' }), 15_000);
    const check = () => {
      const line = out.split('\n').find((l) => /listening/i.test(l));
      if (line) {
        clearTimeout(timer);
        resolve({ line: line.trim().replace(new RegExp(`\\b${port}\\b`, 'g'), '<p>') });
      }
    };
    proc.stdout.on('data', check);
    proc.on('error', (e) => { clearTimeout(timer); resolve({ failed: e.message }); });
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      // Prefer the line that names the error over a stack trace's tail.
      const lines = (err || out).split('\n').map((l) => l.trim()).filter(Boolean);
      const text = (lines.find((l) => /unavailable/i.test(l)) ?? lines.find((l) => /error/i.test(l)) ??
        lines.at(-1) ?? '').slice(0, 300);
      if (/unavailable|not available/i.test(text)) resolve({ skipped: `unavailable: ${text}` });
      else resolve({ failed: `exited (${sig ?? code}) before listening: ${text}` });
    });
  });
  if (!result.line) {
    await stopServer(proc);
    return result;
  }
  const envText = Object.entries(server.env ?? {}).map(([k, v]) => `${k}=${v} `).join('');
  return { proc, port, line: result.line, command: envText + command, output: () => out };
}

/** The `STATS {json}` line a server printed on its way out (raw-echo --stats), or null. */
function parseStats(text) {
  const line = text.split('\n').find((l) => l.startsWith('STATS '));
  try {
    return line ? JSON.parse(line.slice(6)) : null;
  } catch {
    return null;
  }
}

async function stopServer(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/** Runs the load generator; resolves to { result (parsed RESULT json), stdout, stderr, code }. */
function runLoadgen(argv, { onLine } = {}) {
  return new Promise((resolve) => {
    const proc = spawn(LOADGEN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => {
      out += d;
      if (onLine) for (const l of String(d).split('\n')) if (l) onLine(l, proc);
    });
    proc.stderr.on('data', (d) => { if (err.length < 8192) err += d; });
    proc.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      let result = null;
      try {
        result = line ? JSON.parse(line.slice(7)) : null;
      } catch {
        result = null;
      }
      resolve({ result, stdout: out, stderr: err.trim(), code });
    });
  });
}

// ---------------------------------------------------------------------------
// One measurement
// ---------------------------------------------------------------------------

function loadgenArgs(shape, port, server) {
  return [
    '--host', opts.host, '--port', String(port),
    '-c', String(shape.conns), '-p', String(shape.pipeline),
    ...(server?.frameFile ? ['--frame-file', path.join(ROOT, server.frameFile)] : ['-s', '64']),
    '-d', String(opts.duration), '-w', String(server?.warmup ?? opts.warmup), '-t', String(opts.loadgenThreads), '-q',
  ];
}

async function measureThroughput(server, shape) {
  if (opts.quietWait > 0) await waitQuiet();
  const s = await startServer(server, shape.workUs);
  if (!s.proc) return s;
  let r;
  try {
    const argv = loadgenArgs(shape, s.port, server);
    const pid = s.proc.pid;
    const ours = treePids(pid, new Set([process.pid]));
    const p0 = processSnapshot();
    const th0 = threadTicks(pid);
    const cpu0 = treeCpuTicks(pid);
    const wait0 = treeRunDelayNs(pid);
    const m0 = machineTicks();
    const t0 = performance.now();
    const lg = await runLoadgen(argv);
    const wall = (performance.now() - t0) / 1000;
    const cpu1 = treeCpuTicks(pid);
    const wait1 = treeRunDelayNs(pid);
    const m1 = machineTicks();
    const th1 = threadTicks(pid);
    const p1 = processSnapshot();
    if (!lg.result?.ok) return { failed: `loadgen: ${lg.stderr || `exit ${lg.code}`}`.slice(0, 300), line: s.line };
    const threads = threadSplit(th0, th1, pid, wall);
    r = {
      line: s.line,
      serverCommand: s.command,
      loadgenCommand: ['build/Release/ww_loadgen', ...argv].join(' '),
      rate: lg.result.rate,
      lat: lg.result.latency_us,
      errors: lg.result.errors,
      loadgenCpu: lg.result.cpu_pct,
      // Over warm-up + measured window, so slightly diluted by connecting.
      serverCpu: (100 * (cpu1 - cpu0)) / TICKS_PER_S / wall,
      // CPU used by anything else on the machine (other processes, kernel
      // threads), in % of one core; a busy neighbour distorts the run.
      otherCpu: Math.max(0, (100 * (m1.busy - m0.busy)) / TICKS_PER_S / wall -
        (100 * (cpu1 - cpu0)) / TICKS_PER_S / wall - lg.result.cpu_pct),
      stealCpu: (100 * (m1.steal - m0.steal)) / TICKS_PER_S / wall,
      // Server threads runnable but not running (waiting for a core), and
      // cores idle, both in % of one core over the run: much of both at
      // once is time lost to hand-offs between threads, not to work.
      waitCpu: (wait1 - wait0) / 1e7 / wall,
      idleCpu: (100 * ((m1.total - m1.busy) - (m0.total - m0.busy))) / TICKS_PER_S / wall,
      topOthers: topOthers(p0, p1, ours, wall),
      forks: m1.forks - m0.forks - 1, // minus the load generator
      // The server's own split: its main (JS) thread and the rest.  Not for
      // the clusters (their work is in child processes).
      mainCpu: server.children ? NaN : threads.main,
      threadsCpu: server.children ? NaN : threads.others,
      busiestThreadCpu: server.children ? NaN : threads.busiest,
    };
  } finally {
    await stopServer(s.proc);
  }
  // raw-echo --stats prints the engine's counters on its way out.
  const st = server.stats ? parseStats(s.output()) : null;
  if (st) {
    r.framesIn = st.framesIn;
    r.jsBatches = st.jsBatches;
    r.ioWakeups = st.ioWakeups;
    r.ringStalls = st.ring?.stalls;
    r.sendsOut = st.sendsOut;
  }
  return r;
}

// Idle memory: the server's RSS growth while it holds opts.memConns idle
// connections, divided by their number.  Measured twice, on two fresh
// servers: straight after start, and after WARM_ECHO_S of echo traffic (100
// connections x 16).  A fresh process has first-touch costs that its first
// connections set off once and a server that has served anything has
// already paid (bench/README.md, "The memory shape" has what they are).
// Those land in the first figure; the second is the cost of an idle
// connection on a server already in use.  On the fresh server a third
// figure follows: the growth while half as many connections again are
// added to the opts.memConns held, divided by those added, which is the
// cost of one more idle connection with the first-touch costs already paid.
const WARM_ECHO_S = 1;

async function measureMemory(server) {
  const fresh = await measureIdle(server, false);
  if (fresh.failed || fresh.skipped) return fresh;
  const warm = await measureIdle(server, true);
  if (warm.failed || warm.skipped) return { ...warm, failed: `after echo traffic: ${warm.failed ?? warm.skipped}` };
  return {
    ...fresh,
    warmLoadCommand: warm.warmLoadCommand,
    warmRssBeforeKb: warm.rssBeforeKb,
    warmRssAfterKb: warm.rssAfterKb,
    warmKbPerConn: warm.kbPerConn,
  };
}

async function measureIdle(server, warm) {
  if (opts.quietWait > 0) await waitQuiet();
  const s = await startServer(server, 0);
  if (!s.proc) return s;
  const pid = s.proc.pid;
  try {
    await sleep(500);
    let warmLoadCommand;
    if (warm) {
      const wargv = ['--host', opts.host, '--port', String(s.port), '-c', '100', '-p', '16', '-s', '64',
        '-d', String(WARM_ECHO_S), '-w', '0', '-q'];
      warmLoadCommand = ['build/Release/ww_loadgen', ...wargv].join(' ');
      const w = await runLoadgen(wargv);
      if (!w.result?.ok) return { failed: `echo traffic before the count failed: ${w.result?.error ?? w.stderr}`.slice(0, 300), line: s.line };
      // Let the 100 connections' closes be taken and the server settle.
      await sleep(1000);
    }
    const before = vmRssKb(pid);
    const n = opts.memConns;
    const held = await holdIdle(s, pid, n);
    if (held.failed) return { failed: held.failed, line: s.line };
    let more;
    let m = 0;
    try {
      // The fresh server only: half as many again beside those held, as far
      // as the server's open-file limit allows (from a second load
      // generator: each process has that limit too).
      if (!warm) m = Math.min(Math.floor(n / 2), openFileLimit(pid) - fdCount(pid) - 100);
      if (m >= 1000) {
        more = await holdIdle(s, pid, m);
        if (more.failed) return { failed: `adding ${m} to those held: ${more.failed}`, line: s.line };
        await more.release();
      }
    } finally {
      await held.release();
    }
    return {
      line: s.line,
      serverCommand: s.command,
      warmLoadCommand,
      loadgenCommand: held.command,
      rssBeforeKb: before,
      rssAfterKb: held.rssKb,
      kbPerConn: (held.rssKb - before) / n,
      moreLoadCommand: more?.command,
      moreKbPerConn: more ? (more.rssKb - held.rssKb) / m : undefined,
    };
  } finally {
    await stopServer(s.proc);
  }
}

/**
 * Has a `ww_loadgen --connect-only` open n idle connections to the server
 * and hold them, waits until the server holds every one (its fd count: the
 * kernel completes handshakes before the server accepts), lets it settle
 * 1 s and reads its VmRSS.  Resolves to { command, rssKb, release } (release()
 * ends the load generator) or { failed }.
 */
async function holdIdle(s, pid, n) {
  const argv = ['--host', opts.host, '--port', String(s.port), '--connect-only', '-c', String(n),
    '--hold', '60', '--connect-timeout', '30', '-q'];
  const fds0 = fdCount(pid);
  let resolveConnected;
  const connected = new Promise((r) => { resolveConnected = r; });
  const lgDone = runLoadgen(argv, { onLine: (l, p) => { if (l.startsWith('CONNECTED')) resolveConnected(p); } });
  const lgProc = await Promise.race([connected, lgDone.then(() => null)]);
  if (!lgProc) return { failed: `loadgen could not connect: ${(await lgDone).stderr}`.slice(0, 300) };
  const release = async () => {
    lgProc.kill('SIGTERM');
    await lgDone;
  };
  const deadline = Date.now() + 20_000;
  while (fdCount(pid) < fds0 + n && Date.now() < deadline) await sleep(100);
  const accepted = fdCount(pid) - fds0;
  if (accepted < n) {
    await release();
    return { failed: `server accepted only ${accepted} of ${n} connections` };
  }
  await sleep(1000);
  return { command: ['build/Release/ww_loadgen', ...argv].join(' '), rssKb: vmRssKb(pid), release };
}

// ---------------------------------------------------------------------------
// Main loop: repetitions outermost, then shapes, then servers in a rotating
// order, so every server sees the same drift of the machine.
// ---------------------------------------------------------------------------

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

const results = new Map(); // `${server}|${shape}` -> [run]
const disturbances = []; // runs kept although the machine was busy, with what was busy
let reruns = 0;

/** What else used the machine during a run, in words. */
function disturbance(r) {
  const parts = [`other CPU ${r.otherCpu.toFixed(0)}% of a core`];
  if (r.stealCpu >= 2) parts.push(`of which hypervisor steal ${r.stealCpu.toFixed(0)}%`);
  parts.push(r.topOthers ? `busiest other processes: ${r.topOthers}` : 'no running process stood out');
  if (r.forks > 0) parts.push(`${r.forks} processes or threads were started meanwhile (the server's own threads among them)`);
  return parts.join('; ');
}
const status = new Map(); // server name -> { skipped | failed } for whole-server skips
const listeningLines = new Map();
const commands = new Map(); // shape id -> { loadgen, servers: Map }
/** A command line with its port (different every run) as <p>. */
const anyPort = (cmd) => cmd.replace(/--port \d+/, '--port <p>');
const started = new Date();
const t0 = performance.now();

const throughputShapes = activeShapes.filter((s) => !s.memory);
const memShape = activeShapes.find((s) => s.memory);
const applies = (server, shape) => !server.shapes || server.shapes.includes(shape.id);
const totalRuns = throughputShapes.reduce((a, sh) => a + activeServers.filter((sv) => applies(sv, sh)).length, 0) * opts.repeat +
  (memShape ? activeServers.filter((s) => s.memory).length : 0);
let done = 0;
console.log(`whirlwind bench: ${activeServers.length} servers, shapes ${activeShapes.map((s) => s.id).join(' ')}, ` +
  `${opts.repeat} x (${opts.warmup} s warm-up (${opts.protocolWarmup} s for the full-protocol rows) + ${opts.duration} s), loadgen threads ${opts.loadgenThreads}`);

function record(server, shape, r) {
  const key = `${server.name}|${shape.id}`;
  if (!results.has(key)) results.set(key, []);
  results.get(key).push(r);
  if (r.line) listeningLines.set(server.name, r.line);
  if (r.skipped && /unavailable|missing/.test(r.skipped)) status.set(server.name, { skipped: r.skipped });
  if (r.serverCommand) {
    if (!commands.has(shape.id)) commands.set(shape.id, { loadgen: r.loadgenCommand, servers: new Map() });
    const c = commands.get(shape.id);
    if (r.warmLoadCommand) c.warmLoad = r.warmLoadCommand;
    if (r.moreLoadCommand) c.moreLoad = r.moreLoadCommand;
    // The protocol rows drive the load generator with --frame-file: say so
    // (the port differs from run to run and does not count).
    c.servers.set(server.name, r.loadgenCommand && anyPort(r.loadgenCommand) !== anyPort(c.loadgen) ? `${r.serverCommand}\` with load \`${r.loadgenCommand}` : r.serverCommand);
  }
  done++;
  const what = r.skipped ? `skipped (${r.skipped})` : r.failed ? `FAILED (${r.failed})`
    : r.kbPerConn !== undefined ? `${r.kbPerConn.toFixed(2)} KB/conn fresh` +
      (r.moreKbPerConn !== undefined ? ` (${r.moreKbPerConn.toFixed(2)} KB per connection added to them)` : '') +
      `, ${r.warmKbPerConn.toFixed(2)} KB/conn after echo traffic`
    : `${fmtRate(r.rate)}/s p50 ${r.lat.p50.toFixed(0)} us p99 ${r.lat.p99.toFixed(0)} us err ${r.errors} ` +
      `cpu loadgen ${r.loadgenCpu.toFixed(0)}% server ${r.serverCpu.toFixed(0)}% other ${r.otherCpu.toFixed(0)}%` +
      (r.disturbed ? ' (DISTURBED, kept)' : '');
  console.log(`[${String(done).padStart(3)}/${totalRuns}] ${shape.id.padEnd(14)} ${server.name.padEnd(18)} ${what}`);
}

// A backend the probe calls unavailable is skipped up front, with its reason.
for (const server of activeServers.filter((s) => s.backend)) {
  if (!probe) status.set(server.name, { skipped: probeError });
  else if (!probe.get(server.backend)?.available) {
    status.set(server.name, { skipped: `unavailable (probe): ${probe.get(server.backend)?.reason ?? 'unknown backend'}` });
  }
}
for (const [name, st] of status) console.log(`${name}: ${st.skipped}`);

for (let rep = 0; rep < opts.repeat; rep++) {
  for (const shape of throughputShapes) {
    const n = activeServers.length;
    for (let i = 0; i < n; i++) {
      const server = activeServers[(i + rep) % n];
      if (server.shapes && !server.shapes.includes(shape.id)) continue;
      if (status.has(server.name)) {
        record(server, shape, status.get(server.name));
        continue;
      }
      let r;
      for (let attempt = 0; ; attempt++) {
        const runStart = performance.now();
        r = await measureThroughput(server, shape);
        if (attempt > 0) rerunSeconds += (performance.now() - runStart) / 1000;
        if (!(r.otherCpu > DEFAULTS.maxOtherCpu)) break;
        if (attempt === opts.retries || budgetLeft() <= 0) {
          r.disturbed = true;
          break;
        }
        console.log(`        ${shape.id} ${server.name}: ${disturbance(r)} during the run; running it again`);
        reruns++;
        const pause = args.quick ? 500 : 2000;
        rerunSeconds += pause / 1000;
        await sleep(pause);
      }
      if (r.disturbed) disturbances.push(`${shape.id} ${server.name} (run ${rep + 1}): ${disturbance(r)}`);
      r.rep = rep;
      record(server, shape, r);
    }
  }
}
if (memShape) {
  for (const server of activeServers.filter((s) => s.memory)) {
    record(server, memShape, status.get(server.name) ?? (await measureMemory(server)));
  }
}
// Push fan-out to ${opts.memConns} connections (bench/fanout.mjs): whirlwind's
// broadcast against a plain node:net write loop.  Its own script, run here
// so one command measures everything.
let fanout = null;
if (!args.quick && !args.only && !args['skip-fanout']) {
  console.log(`\npush fan-out: node bench/fanout.mjs --conns ${opts.memConns} --repeat ${opts.repeat}`);
  const { status, stdout, stderr } = spawnSync(node, ['bench/fanout.mjs', '--conns', String(opts.memConns), '--repeat', String(opts.repeat)], {
    cwd: ROOT, encoding: 'utf8', timeout: 300_000,
  });
  process.stdout.write(stdout);
  const table = stdout.slice(stdout.indexOf('push fan-out,'));
  fanout = status === 0 && stdout.includes('push fan-out,')
    ? table.trim()
    : `failed (exit ${status}): ${(stderr || stdout).trim().slice(-300)}`;
}
const elapsed = (performance.now() - t0) / 1000;

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

function fmtRate(r) {
  if (!Number.isFinite(r)) return '-';
  if (r >= 1e6) return `${(r / 1e6).toFixed(2)}M`;
  if (r >= 1e3) return `${(r / 1e3).toFixed(1)}k`;
  return r.toFixed(0);
}
const pct0 = (x) => (Number.isFinite(x) ? `${x.toFixed(0)}%` : '-');
const fmtN = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const fmtRatio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '-');
const fmtUs = (x) => (Number.isFinite(x) ? (x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(0)} us`) : '-');

/** Median summary of the runs of one server and shape, or a reason it has none. */
/**
 * Whether every server that completed runs of a shape has at least one quiet
 * (undisturbed) run of it.  Only then are disturbed runs left out of that
 * shape's medians: comparing one server's quiet runs with another's busy
 * ones would not be fair either way (on these VMs a busy machine can even
 * make 1x1 faster: no vCPU has to wake from idle).
 */
function shapeHasQuietRuns(shapeId) {
  return activeServers.every((server) => {
    const completed = (results.get(`${server.name}|${shapeId}`) ?? []).filter((r) => !r.skipped && !r.failed);
    return completed.length === 0 || completed.some((r) => !r.disturbed);
  });
}

function summary(serverName, shapeId) {
  const runs = results.get(`${serverName}|${shapeId}`) ?? [];
  const completed = runs.filter((r) => !r.skipped && !r.failed);
  // Disturbed runs are left out when every server has a quiet run of this
  // shape (the notes say how many were dropped).
  const quiet = completed.filter((r) => !r.disturbed);
  const ok = quiet.length && shapeHasQuietRuns(shapeId) ? quiet : completed;
  if (ok.length === 0) {
    const r = runs.find((x) => x.skipped) ?? runs.find((x) => x.failed);
    return { reason: r ? (r.skipped ? `skipped: ${r.skipped}` : `failed: ${r.failed}`) : 'not run' };
  }
  const m = (f) => median(ok.map(f));
  return {
    runs: ok.length,
    failedRuns: runs.length - completed.length,
    droppedDisturbed: completed.length - ok.length,
    rate: m((r) => r.rate),
    p50: m((r) => r.lat?.p50), p90: m((r) => r.lat?.p90), p99: m((r) => r.lat?.p99),
    p999: m((r) => r.lat?.p99_9), max: m((r) => r.lat?.max),
    errors: ok.reduce((a, r) => a + (r.errors ?? 0), 0),
    loadgenCpu: m((r) => r.loadgenCpu), serverCpu: m((r) => r.serverCpu), otherCpu: m((r) => r.otherCpu),
    disturbed: ok.filter((r) => r.disturbed).length,
    kbPerConn: m((r) => r.kbPerConn), rssBeforeKb: m((r) => r.rssBeforeKb), rssAfterKb: m((r) => r.rssAfterKb),
    warmKbPerConn: m((r) => r.warmKbPerConn), warmRssBeforeKb: m((r) => r.warmRssBeforeKb), warmRssAfterKb: m((r) => r.warmRssAfterKb),
    moreKbPerConn: m((r) => r.moreKbPerConn),
    stealCpu: m((r) => r.stealCpu),
    waitCpu: m((r) => r.waitCpu), idleCpu: m((r) => r.idleCpu),
    mainCpu: m((r) => r.mainCpu), threadsCpu: m((r) => r.threadsCpu), busiestThreadCpu: m((r) => r.busiestThreadCpu),
    framesPerBatch: m((r) => r.framesIn / r.jsBatches),
    framesPerIoWakeup: m((r) => r.framesIn / r.ioWakeups),
    ringStalls: m((r) => r.ringStalls),
  };
}

const short = (reason) => (reason.startsWith('skipped') ? 'skipped' : reason.startsWith('failed') ? 'FAILED' : reason);

// Throughput: one row per server, one column per shape, "rate (ratio)".
const throughputRows = {};
const latencyRows = {};
const notes = [];
for (const server of activeServers) {
  const row = {};
  for (const shape of throughputShapes) {
    if (server.shapes && !server.shapes.includes(shape.id)) {
      row[shape.id] = '';
      continue;
    }
    const s = summary(server.name, shape.id);
    const ref = summary(server.ref ?? REFERENCE, shape.id);
    if (s.reason) {
      row[shape.id] = short(s.reason);
      notes.push(`${server.name} / ${shape.id}: ${s.reason}`);
      continue;
    }
    row[shape.id] = `${fmtRate(s.rate)}/s (${fmtRatio(s.rate / ref.rate)}${server.ref ? ` vs ${server.ref}` : ''})`;
    if (s.errors) notes.push(`${server.name} / ${shape.id}: ${s.errors} errors (mismatches or lost connections)`);
    if (s.disturbed) notes.push(`${server.name} / ${shape.id}: ${s.disturbed} of the ${s.runs} run(s) in the median had other processes using over ${DEFAULTS.maxOtherCpu}% CPU (after up to ${opts.retries} re-run(s))`);
    if (s.droppedDisturbed) notes.push(`${server.name} / ${shape.id}: ${s.droppedDisturbed} disturbed run(s) left out; the median is of the ${s.runs} quiet one(s)`);
    if (s.loadgenCpu >= 95 * opts.loadgenThreads) notes.push(`${server.name} / ${shape.id}: the load generator used ${s.loadgenCpu.toFixed(0)}% CPU (${opts.loadgenThreads} thread(s)): this rate is bounded by the load generator, not the server`);
    if (s.failedRuns) notes.push(`${server.name} / ${shape.id}: ${s.failedRuns} of ${s.runs + s.droppedDisturbed + s.failedRuns} runs failed`);
  }
  throughputRows[server.name] = row;
  const lat = summary(server.name, '1x1');
  if (throughputShapes.some((s) => s.id === '1x1') && (!server.shapes || server.shapes.includes('1x1'))) {
    latencyRows[server.name] = lat.reason ? { p50: short(lat.reason) } : {
      p50: fmtUs(lat.p50), p90: fmtUs(lat.p90), p99: fmtUs(lat.p99), 'p99.9': fmtUs(lat.p999), max: fmtUs(lat.max),
      'p50 vs net': fmtRatio(lat.p50 / summary(REFERENCE, '1x1').p50),
    };
  }
}
// Spread: each round's ratio to the reference's run of the same round (the
// two ran within seconds of each other, so a machine that drifts between
// rounds moves both), as "median (lowest-highest)".  Only rounds where both
// completed count; with --repeat 1 there is nothing to spread.
function pairedRatios(server, shapeId) {
  const mine = (results.get(`${server.name}|${shapeId}`) ?? []).filter((r) => !r.skipped && !r.failed && r.rate > 0);
  const refs = (results.get(`${server.ref ?? REFERENCE}|${shapeId}`) ?? []).filter((r) => !r.skipped && !r.failed && r.rate > 0);
  const out = [];
  for (const r of mine) {
    const ref = refs.find((x) => x.rep === r.rep);
    if (ref) out.push(r.rate / ref.rate);
  }
  return out;
}
const spreadRows = {};
if (opts.repeat > 1) {
  for (const server of activeServers) {
    if (server.name === REFERENCE || server.name === server.ref) continue;
    const row = {};
    let any = false;
    for (const shape of throughputShapes) {
      const xs = pairedRatios(server, shape.id);
      if (xs.length === 0) {
        row[shape.id] = '';
        continue;
      }
      any = true;
      row[shape.id] = `${fmtRatio(median(xs))} (${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)})${server.ref ? ` vs ${server.ref}` : ''}`;
    }
    if (any) spreadRows[server.name] = row;
  }
}
const memoryRows = {};
if (memShape) {
  const ref = summary(REFERENCE, memShape.id);
  for (const server of activeServers.filter((s) => s.memory)) {
    const s = summary(server.name, memShape.id);
    memoryRows[server.name] = s.reason ? { 'fresh: KB per connection': short(s.reason) } : {
      'fresh: KB per connection': s.kbPerConn.toFixed(2),
      'fresh: vs net': fmtRatio(s.kbPerConn / ref.kbPerConn),
      'fresh: RSS before / after (MB)': `${(s.rssBeforeKb / 1024).toFixed(1)} / ${(s.rssAfterKb / 1024).toFixed(1)}`,
      'added: KB per connection': Number.isFinite(s.moreKbPerConn) ? s.moreKbPerConn.toFixed(2) : '-',
      'added: vs net': fmtRatio(s.moreKbPerConn / ref.moreKbPerConn),
      'after echo: KB per connection': s.warmKbPerConn.toFixed(2),
      'after echo: vs net': fmtRatio(s.warmKbPerConn / ref.warmKbPerConn),
      'after echo: RSS before / after (MB)': `${(s.warmRssBeforeKb / 1024).toFixed(1)} / ${(s.warmRssAfterKb / 1024).toFixed(1)}`,
    };
    if (s.reason) notes.push(`${server.name} / mem: ${s.reason}`);
  }
}

if (throughputShapes.length) {
  console.log(`\nThroughput, replies/s (median of ${opts.repeat}); ratio to plain node:net ('${REFERENCE}')`);
  console.table(throughputRows);
}
if (Object.keys(latencyRows).length) {
  console.log('\nLatency at 1 connection x 1 in flight (medians of each percentile)');
  console.table(latencyRows);
}
if (memShape) {
  console.log(`\nServer RSS per idle connection at ${opts.memConns} connections; ratio to plain node:net`);
  console.table(memoryRows);
}
for (const n of notes) console.log(`note: ${n}`);

// ---------------------------------------------------------------------------
// RESULTS.md
// ---------------------------------------------------------------------------

function mdTable(rows, firstHeader) {
  const names = Object.keys(rows);
  const cols = [...new Set(names.flatMap((n) => Object.keys(rows[n])))];
  const lines = [`| ${[firstHeader, ...cols].join(' | ')} |`, `|${[firstHeader, ...cols].map(() => '---').join('|')}|`];
  for (const n of names) lines.push(`| ${[n, ...cols.map((c) => rows[n][c] ?? '')].join(' | ')} |`);
  return lines.join('\n');
}

const cpuModel = (/model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8')) ?? [])[1] ?? 'unknown';
let gitRev;
try {
  gitRev = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' });
  if (dirty.trim()) gitRev += ' (with uncommitted changes)';
} catch {
  gitRev = 'unknown';
}

const detailRows = {};
for (const shape of throughputShapes) {
  for (const server of activeServers) {
    const s = summary(server.name, shape.id);
    if (s.reason) continue;
    detailRows[`${shape.id} ${server.name}`] = {
      'replies/s': fmtRate(s.rate), p50: fmtUs(s.p50), p90: fmtUs(s.p90), p99: fmtUs(s.p99), 'p99.9': fmtUs(s.p999),
      max: fmtUs(s.max), errors: String(s.errors), 'loadgen CPU': `${s.loadgenCpu.toFixed(0)}%`,
      'server CPU': `${s.serverCpu.toFixed(0)}%`, 'other CPU': `${s.otherCpu.toFixed(0)}%`,
      steal: pct0(s.stealCpu),
    };
  }
}

// Where the time goes: CPU per thread and the engine's counters, for node:net
// and each whirlwind backend (c-echo as the floor), and the full-protocol
// actor against its node:net and cluster twins.
const TIME_SPLIT_ROWS = new Set([REFERENCE, 'c-echo', 'actor', 'proto-net', 'proto-cluster']);
const timeRows = {};
for (const shape of throughputShapes) {
  for (const server of activeServers.filter((x) => x.backend || TIME_SPLIT_ROWS.has(x.name))) {
    const s = summary(server.name, shape.id);
    if (s.reason) continue;
    timeRows[`${shape.id} ${server.name}`] = {
      'replies/s': fmtRate(s.rate),
      'replies per server CPU-s': fmtRate(s.rate / (s.serverCpu / 100)),
      'server main thread': pct0(s.mainCpu),
      'server other threads': pct0(s.threadsCpu),
      loadgen: pct0(s.loadgenCpu),
      'server waiting for a core': pct0(s.waitCpu),
      'machine idle': pct0(s.idleCpu),
      'frames per JS batch': fmtN(s.framesPerBatch),
      'frames per I/O wake-up': fmtN(s.framesPerIoWakeup),
      'ring stalls': Number.isFinite(s.ringStalls) ? String(s.ringStalls) : '-',
    };
  }
}
if (Object.keys(timeRows).length) {
  console.log('\nWhere the time goes (medians; CPU in % of one core over the whole load run)');
  console.table(timeRows);
}
const backendLines = probe
  ? [...probe.values()].map((b) => `- ${b.name}: ${b.available ? 'available' : `unavailable: ${b.reason}`}`)
  : [`- ${probeError}`];

const cmdLines = [];
for (const shape of activeShapes) {
  const c = commands.get(shape.id);
  if (!c) continue;
  cmdLines.push(`- ${shape.id} (${shape.about}):`, `  - load: \`${anyPort(c.loadgen)}\``);
  if (c.moreLoad) cmdLines.push(`  - the connections added to those held ("added" figures), beside the load above: \`${anyPort(c.moreLoad)}\``);
  if (c.warmLoad) cmdLines.push(`  - echo traffic before the count ("after echo" figures): \`${anyPort(c.warmLoad)}\``);
  for (const [name, cmd] of c.servers) cmdLines.push(`  - ${name}: \`${anyPort(cmd)}\``);
}

const md = `# Benchmark results

Produced by \`node bench/run.mjs${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\`; do not edit by hand.
See bench/README.md for what each number means.

- date: ${started.toISOString()} (run took ${elapsed.toFixed(0)} s)
- machine: ${cpuModel}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB
- kernel: ${os.release()}
- node: ${process.version}
- commit: ${gitRev}
- load generator: build/Release/ww_loadgen, ${opts.loadgenThreads} thread(s), 64-byte payloads, loopback ${opts.host}
- other processes: before each run the runner waited up to ${opts.quietWait} s for the machine to be idle (${quietWaited.toFixed(0)} s in all); ${reruns} run(s) were repeated (${rerunSeconds.toFixed(0)} s) because something else used over ${DEFAULTS.maxOtherCpu}% of a core, and ${disturbances.length} were kept disturbed after up to ${opts.retries} re-run(s) or once the ${opts.disturbanceBudget} s budget for waiting and re-running was spent (listed under "Disturbances"); see "other CPU" below
- each run: ${opts.warmup} s warm-up (${opts.protocolWarmup} s for the full-protocol rows: actor, proto-net, proto-net-piscina, proto-cluster) + ${opts.duration} s measured; ${opts.repeat} run(s) per server and shape, medians shown; servers alternate

## Throughput (replies/s, ratio to plain node:net)

${throughputShapes.length ? mdTable(throughputRows, 'server') : '(no throughput shapes in this run)'}

${throughputShapes.map((s) => `- ${s.id}: ${s.about}`).join('\n')}

### Run-to-run spread

${Object.keys(spreadRows).length ? `Each round's ratio to the reference run of the same round (plain node:net, or the row named), as median (lowest-highest) over the ${opts.repeat} rounds. The reference and the server ran seconds apart, so this spread is what the machine's noise does to one ratio; the table above divides medians of rates instead.\n\n${mdTable(spreadRows, 'server')}` : '(one round only: no spread)'}

## Push fan-out

${fanout ?? '(not in this run: --quick, --only or --skip-fanout)'}

Command: \`node bench/fanout.mjs --conns ${opts.memConns} --repeat ${opts.repeat}\` (10 rounds of one 64-byte PUSH to every connection; the rate is frames delivered over the time from the server's first push call to the last frame's arrival at ww_loadgen --sink).

## Latency, 1 connection x 1 in flight

${Object.keys(latencyRows).length ? mdTable(latencyRows, 'server') : '(1x1 not in this run)'}

## Memory: server RSS per idle connection

${memShape ? `${opts.memConns} idle connections (load generator --connect-only); (VmRSS after - VmRSS before) / connections, read from /proc/<pid>/status once the server holds every socket and 1 s has passed. Kernel socket buffers are not in RSS. Each server is measured twice, each time freshly started: at once ("fresh"), and after ${WARM_ECHO_S} s of echo traffic on 100 connections x 16 and 1 s to settle ("after echo"). On the fresh server, half as many connections again are then opened from a second load generator beside the ${opts.memConns} held, and the growth is divided by those added ("added"). The fresh figure also holds what a new process pays once, on its first connections (memory its threads touch for the first time); "added" and "after echo" are what one more idle connection costs once that is paid (bench/README.md, "The memory shape").\n\n${mdTable(memoryRows, 'server')}` : '(memory shape not in this run)'}

## Every server and shape (medians)

${Object.keys(detailRows).length ? mdTable(detailRows, 'shape / server') : '(none)'}

CPU columns are in percent of one core (the machine has ${os.cpus().length}). Server CPU: the server process tree's utime+stime over the load generator's whole run (warm-up included). Loadgen CPU: the load generator's own, over the measured window. Other CPU: the rest of the machine's busy time over the run (other processes, kernel threads, hypervisor steal); a run with more than ${DEFAULTS.maxOtherCpu}% is re-run up to ${opts.retries} times. Steal: the part of other CPU the hypervisor took.

## Where the time goes

${Object.keys(timeRows).length ? mdTable(timeRows, 'shape / server') : '(no node:net or whirlwind runs)'}

Server main thread: CPU of the thread whose id is the server's pid (Node's JS thread; for c-echo its only loop). Server other threads: every other thread of the server process; for raw whirlwind that is the I/O thread(s), for the actor the I/O thread(s) and the worker pool, for node:net V8 and libuv helpers; for proto-cluster (its work is in child processes) neither is shown. Replies per server CPU-second: throughput divided by the server's CPU, i.e. how much work one core of server buys. Server waiting for a core: the time the server's threads were runnable but not running (schedstat run_delay, summed over its threads); machine idle: the cores' idle time; both over the whole load run, in percent of one core. Much of both in the same run means threads handed work to each other and waited to be scheduled while a core sat idle (bench/README.md, "Reading the time split"). Frames per JS batch: frames the engine delivered divided by the batches the JS thread drained (raw-echo's batchEnd count); frames per I/O wake-up: frames divided by the I/O threads' loop turns (server.stats().ioWakeups); ring stalls: times an I/O thread found its ring full. The counters are cumulative over warm-up and measured window.

## Backends (the addon's probe)

${backendLines.join('\n')}

## Disturbances

${disturbances.length ? disturbances.map((d) => `- ${d}`).join('\n') : '- none: every run kept had other CPU under ' + DEFAULTS.maxOtherCpu + '% of a core'}

## Servers

${activeServers.map((s) => `- ${s.name}: ${s.label}${listeningLines.has(s.name) ? ` — \`${listeningLines.get(s.name)}\`` : ''}`).join('\n')}

## Notes

${notes.length ? notes.map((n) => `- ${n}`).join('\n') : '- none'}

## Commands

${cmdLines.join('\n')}
`;
fs.writeFileSync(opts.out, md);
if (args.json) {
  const all = {};
  for (const server of activeServers) {
    for (const shape of activeShapes) all[`${server.name}|${shape.id}`] = summary(server.name, shape.id);
  }
  fs.writeFileSync(args.json, JSON.stringify({ opts, summaries: all }, null, 2));
}
console.log(`\nwrote ${path.relative(process.cwd(), opts.out)} (${elapsed.toFixed(0)} s)`);
