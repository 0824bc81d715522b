// poller-echo.mjs - runs build-win/poller-echo.exe under Wine and checks the
// IOCP backend on its own with Linux-side clients: many connections at
// once, large writes (more than the receive pool holds, so rule 2's parking
// is exercised), many small writes, an idle connection, and a peer that
// closes first.  Exit 0 on success.
//
//   node test/windows/poller-echo.mjs <wine64> <exe> <work-dir>
import { spawn } from 'node:child_process';
import { openSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const [wine, exe, dir] = process.argv.slice(2);
const portFile = join(dir, 'poller-echo.port');
const logFile = join(dir, 'poller-echo.log');
rmSync(portFile, { force: true });

const CONNS = 40;
const log = openSync(logFile, 'w');
// Wine's node.exe/any exe cannot use Unix pipes for stdio: use a file.
const child = spawn('timeout', ['60', wine, exe, portFile, String(CONNS + 4), '4'], {
  stdio: ['ignore', log, log],
});
const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));

let port = 0;
for (let i = 0; i < 200 && !port; i++) {
  if (existsSync(portFile)) port = parseInt(readFileSync(portFile, 'utf8'), 10) || 0;
  if (!port) await sleep(50);
}
if (!port) {
  console.error('poller-echo did not start:\n' + readFileSync(logFile, 'utf8'));
  process.exit(1);
}

function echo(chunks, { idleMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const want = Buffer.concat(chunks);
    const got = [];
    let n = 0;
    const s = connect(port, '127.0.0.1', async () => {
      if (idleMs) await sleep(idleMs);
      for (const c of chunks) s.write(c);
      s.end();
    });
    s.on('data', (d) => {
      got.push(d);
      n += d.length;
    });
    s.on('error', reject);
    s.on('close', () => {
      const all = Buffer.concat(got);
      if (n !== want.length || !all.equals(want)) reject(new Error(`echo mismatch: sent ${want.length}, got ${n}`));
      else resolve(n);
    });
  });
}

// Sends "!ABORT!" and never reads: the server closes it while an 8 MiB send is in flight.
function abortedSend() {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write('!ABORT!'));
    s.pause();
    setTimeout(() => s.resume(), 300); // a paused socket never sees its end
    s.on('error', () => {});
    s.on('close', () => resolve(0));
  });
}

const t0 = Date.now();
const jobs = [];
for (let i = 0; i < CONNS; i++) {
  const chunks = [];
  if (i % 4 === 0) chunks.push(randomBytes(1 << 20)); // 1 MiB: far more than 4 x 16 KiB buffers
  else for (let k = 0; k < 50; k++) chunks.push(randomBytes(1 + ((i * 31 + k * 7) % 300)));
  jobs.push(echo(chunks));
}
jobs.push(echo([Buffer.from('late')], { idleMs: 500 })); // idle first: holds no buffer
jobs.push(echo([]));                                     // connects and closes at once
jobs.push(abortedSend(), abortedSend());
const results = await Promise.allSettled(jobs);
const bad = results.filter((r) => r.status === 'rejected');
const code = await exited;
const out = readFileSync(logFile, 'utf8').trim();
console.log(`poller-echo: ${results.length - bad.length}/${results.length} echoes ok in ${Date.now() - t0} ms; server exit ${code}; ${out}`);
for (const b of bad.slice(0, 5)) console.error('  ' + b.reason);
process.exit(bad.length === 0 && code === 0 ? 0 : 1);
