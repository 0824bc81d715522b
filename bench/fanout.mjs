#!/usr/bin/env node
// Push fan-out: one 64-byte PUSH to each of N connections (default 10,000),
// R rounds back to back, whirlwind's ActorServer.broadcast against the plain
// node:net loop (same frame bytes), servers alternating within one run.
// The native load generator holds the connections in --sink mode, counts
// every whole frame; the rate is frames delivered divided by the time from
// the server's first push call to the last frame's arrival (both on
// CLOCK_MONOTONIC), so the server's queueing time counts too.
//
//   npm run bench:fanout
//   node bench/fanout.mjs [--conns 10000] [--rounds 10] [--repeat 3] [--size 64] [--json out.json]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LOADGEN = path.join(ROOT, 'build', 'Release', 'ww_loadgen');
const { values: a } = parseArgs({
  options: {
    conns: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '3' },
    size: { type: 'string', default: '64' },
    'base-port': { type: 'string', default: '17600' },
    json: { type: 'string' },
  },
});
const conns = Number(a.conns);
const rounds = Number(a.rounds);
const repeat = Number(a.repeat);
for (const [k, v] of Object.entries({ conns, rounds, repeat })) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`fanout: --${k} must be an integer >= 1`);
    process.exit(2);
  }
}
if (!fs.existsSync(LOADGEN)) {
  console.error(`fanout: ${LOADGEN} is missing; run npm install (node-gyp builds it)`);
  process.exit(2);
}

const SERVERS = [
  { name: 'net', label: 'node:net loop', script: 'bench/servers/fanout-net.mjs' },
  { name: 'whirlwind', label: 'whirlwind broadcast', script: 'bench/servers/fanout-whirlwind.mjs' },
];

let port = Number(a['base-port']);

function waitLine(child, re, what, ms) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no line matching ${re} within ${ms} ms`)), ms);
    const onData = (d) => {
      buf += d;
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        resolve(m);
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before ${re}: ${buf.slice(-300)}`));
    });
  });
}

async function once(server) {
  const p = port++;
  const srv = spawn(process.execPath, [server.script, '--port', String(p), '--size', a.size], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  srv.stdout.setEncoding('utf8');
  try {
    await waitLine(srv, /listening/, server.name, 20_000);
    const lg = spawn(LOADGEN, ['--port', String(p), '-c', String(conns), '--sink', String(rounds), '--hold', '60', '-q'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    lg.stdout.setEncoding('utf8');
    let out = '';
    lg.stdout.on('data', (d) => (out += d));
    const exited = new Promise((r) => lg.once('exit', r));
    await waitLine(lg, /CONNECTED/, 'ww_loadgen', 60_000);
    const pushed = waitLine(srv, /pushed (\d+) in ([\d.]+) ms start_ns=(\d+)/, server.name, 60_000);
    srv.stdin.write(`go ${rounds} ${conns}\n`);
    const [, n, ms, startNs] = await pushed;
    await exited;
    const line = out.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`ww_loadgen printed no RESULT: ${out.slice(-300)}`);
    const r = JSON.parse(line.slice(7));
    const span = r.frames ? Number(BigInt(r.last_ns) - BigInt(startNs)) / 1e9 : 0;
    return { ok: r.ok, rate: span > 0 ? r.frames / span : 0, span, frames: r.frames, complete: r.complete_conns, queued: Number(n), queueMs: Number(ms) };
  } finally {
    srv.kill('SIGTERM');
    await new Promise((r) => (srv.exitCode !== null ? r() : srv.once('exit', r)));
  }
}

const results = Object.fromEntries(SERVERS.map((s) => [s.name, []]));
for (let i = 0; i < repeat; i++) {
  for (const s of i % 2 ? [...SERVERS].reverse() : SERVERS) {
    const r = await once(s);
    results[s.name].push(r);
    console.log(
      `${s.label.padEnd(20)} run ${i + 1}: ${r.ok ? '' : 'INCOMPLETE '}${Math.round(r.rate).toLocaleString('en-US')} pushes/s ` +
        `(${r.frames} frames to ${r.complete}/${conns} connections in ${(r.span * 1000).toFixed(1)} ms from the first push call; the server's push loop took ${r.queueMs} ms)`,
    );
  }
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const net = median(results.net.map((r) => r.rate));
console.log(`\npush fan-out, ${conns} connections x ${rounds} rounds, ${a.size}-byte body, median of ${repeat}:`);
console.log('| server | pushes/s | ratio to node:net | all delivered |');
console.log('|---|---:|---:|---|');
const rows = [];
for (const s of SERVERS) {
  const rate = median(results[s.name].map((r) => r.rate));
  const ok = results[s.name].every((r) => r.ok);
  rows.push({ server: s.name, rate, ratio: rate / net, ok });
  console.log(`| ${s.label} | ${Math.round(rate).toLocaleString('en-US')} | ${(rate / net).toFixed(2)}x | ${ok ? 'yes' : 'NO'} |`);
}
console.log(`\n${os.cpus().length} x ${os.cpus()[0]?.model}, Linux ${os.release()}, Node ${process.version}, ${new Date().toISOString()}`);
if (a.json) fs.writeFileSync(a.json, JSON.stringify({ conns, rounds, size: Number(a.size), repeat, rows, results }, null, 2));
if (rows.some((r) => !r.ok)) process.exitCode = 1;
