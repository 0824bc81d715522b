// linux-clients.mjs - the whole Windows addon (engine + IOCP backend) under
// Wine, driven by clients in this Linux node process: the server is
// test/windows/echo-server.mjs run by node.exe, so every byte crosses from
// Linux sockets into Wine's Winsock and back.
//
//   node test/windows/linux-clients.mjs <wine64> <node.exe> <package-copy> <work-dir>
//
// Checks, each with every byte verified: many concurrent connections, a
// frame split at every byte boundary, a frame far larger than the ring,
// peers that half-close or reset mid-frame next to healthy ones, and a
// peer that stops reading while megabytes are echoed to it; then the
// project's C load generator (build/Release/ww_loadgen, when built) for two
// seconds of pipelined traffic, byte-checked.
import { execFileSync, spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const [wine, nodeExe, pkg, dir] = process.argv.slice(2);
const logFile = join(dir, 'linux-clients-server.log');
const log = openSync(logFile, 'w');
// node.exe cannot use Unix pipes for stdio under Wine: a file it is.
const server = spawn('timeout', ['-k', '5', '150', wine, nodeExe, 'test/windows/echo-server.mjs'], {
  cwd: pkg,
  stdio: ['ignore', log, log],
  env: { ...process.env, WHIRLWIND_BACKEND: 'iocp' },
});
const serverExit = new Promise((resolve) => server.on('exit', (code, sig) => resolve(code ?? sig)));

let port = 0;
for (let i = 0; i < 300 && !port; i++) {
  const m = /listening on .*:(\d+) backend=(\w+)/.exec(readFileSync(logFile, 'utf8'));
  if (m) {
    if (m[2] !== 'iocp') throw new Error('server runs backend ' + m[2]);
    port = Number(m[1]);
  } else await sleep(50);
}
if (!port) {
  console.error('raw-echo under Wine did not start:\n' + readFileSync(logFile, 'utf8'));
  process.exit(1);
}

const frame = (p) => {
  const b = Buffer.allocUnsafe(4 + p.length);
  b.writeUInt32LE(p.length, 0);
  p.copy(b, 4);
  return b;
};
const pattern = (seed, n) => {
  const b = Buffer.allocUnsafe(n);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
};

/** A framed client: collects echoed frames. */
function client() {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const c = { s, frames: [], closed: false, buf: Buffer.alloc(0), waiters: [] };
    s.on('data', (d) => {
      c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
      while (c.buf.length >= 4) {
        const n = c.buf.readUInt32LE(0);
        if (c.buf.length < 4 + n) break;
        c.frames.push(Buffer.from(c.buf.subarray(4, 4 + n)));
        c.buf = c.buf.subarray(4 + n);
      }
      for (const w of c.waiters.splice(0)) w();
    });
    s.on('close', () => {
      c.closed = true;
      for (const w of c.waiters.splice(0)) w();
    });
    s.on('error', () => {});
    s.once('connect', () => resolve(c));
    s.once('error', reject);
  });
}
async function waitFor(c, pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (have ${c.frames.length} frames)`);
    await new Promise((r) => {
      c.waiters.push(r);
      setTimeout(r, 100);
    });
  }
}

const checks = [];
async function check(name, fn) {
  const t = Date.now();
  try {
    await fn();
    checks.push(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    checks.push(`FAIL ${name}: ${e.message}`);
  }
}

await check('TCP keep-alive set by the Windows build (SIO_KEEPALIVE_VALS), seen by ss on Linux', async () => {
  const c = await client();
  c.s.write(frame(Buffer.from('ka')));
  await waitFor(c, () => c.frames.length >= 1, 10_000, 'echo');
  let out;
  try {
    out = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  } catch {
    c.s.destroy();
    checks.push('skip keep-alive check: ss (iproute2) is not installed');
    return;
  }
  c.s.destroy();
  if (!/timer:\(keepalive,/.test(out)) throw new Error('no keepalive timer on the server socket: ' + out.trim());
});

await check('300 concurrent connections x 50 frames, every byte verified', async () => {
  const cs = await Promise.all(Array.from({ length: 300 }, () => client()));
  cs.forEach((c, j) => {
    const parts = [];
    for (let i = 0; i < 50; i++) parts.push(frame(pattern(j * 100 + i, (i * 37 + j) % 700)));
    c.s.write(Buffer.concat(parts));
  });
  await Promise.all(cs.map((c) => waitFor(c, () => c.frames.length >= 50, 60_000, '50 frames')));
  cs.forEach((c, j) => {
    for (let i = 0; i < 50; i++)
      if (!c.frames[i].equals(pattern(j * 100 + i, (i * 37 + j) % 700))) throw new Error(`conn ${j} frame ${i} differs`);
  });
  cs.forEach((c) => c.s.destroy());
});

await check('a frame split at every byte boundary', async () => {
  const c = await client();
  const p = pattern(1, 29);
  const w = frame(p);
  for (let k = 1; k < w.length; k++) {
    c.s.write(w.subarray(0, k));
    await sleep(2);
    c.s.write(w.subarray(k));
  }
  await waitFor(c, () => c.frames.length >= w.length - 1, 20_000, 'split frames');
  if (!c.frames.every((f) => f.equals(p))) throw new Error('a reassembled frame differs');
  c.s.destroy();
});

await check('a 6 MiB frame between small ones, in order', async () => {
  const c = await client();
  const big = pattern(7, 6 << 20);
  c.s.write(Buffer.concat([frame(pattern(1, 10)), frame(big), frame(pattern(2, 10))]));
  await waitFor(c, () => c.frames.length >= 3, 60_000, '3 frames');
  if (!c.frames[0].equals(pattern(1, 10)) || !c.frames[1].equals(big) || !c.frames[2].equals(pattern(2, 10)))
    throw new Error('frames differ');
  c.s.destroy();
});

await check('half-close and reset mid-frame next to a healthy connection', async () => {
  const good = await client();
  const half = await client();
  const reset = await client();
  half.s.write(Buffer.concat([frame(pattern(3, 100)), frame(pattern(4, 100)).subarray(0, 40)]));
  half.s.end(); // the server echoes the whole frame, then closes: the partial one is dropped
  reset.s.write(frame(pattern(5, 100)).subarray(0, 60));
  await sleep(20);
  reset.s.resetAndDestroy();
  await waitFor(half, () => half.closed, 10_000, 'half-closed peer to be closed');
  // Whether the whole frame is echoed depends on JS answering before the
  // I/O thread sees EOF (the same on every backend); the partial one never is.
  if (half.frames.length > 1 || (half.frames.length === 1 && !half.frames[0].equals(pattern(3, 100))))
    throw new Error('half-close: wrong frames');
  for (let i = 0; i < 20; i++) good.s.write(frame(pattern(100 + i, 500)));
  await waitFor(good, () => good.frames.length >= 20, 10_000, 'healthy frames');
  if (good.closed) throw new Error('the healthy connection was closed');
  good.s.destroy();
});

await check('a peer that stops reading gets 16 MiB once it reads again', async () => {
  const c = await client();
  c.s.pause();
  const chunk = pattern(9, 64 * 1024);
  for (let i = 0; i < 256; i++) c.s.write(frame(chunk));
  await sleep(500);
  c.s.resume();
  await waitFor(c, () => c.frames.length >= 256, 60_000, '256 echoed frames');
  if (!c.frames.every((f) => f.equals(chunk))) throw new Error('echoed bytes differ');
  c.s.destroy();
});

await check('the server still accepts and echoes afterwards', async () => {
  const c = await client();
  c.s.write(frame(Buffer.from('still here')));
  await waitFor(c, () => c.frames.length >= 1, 10_000, 'echo');
  if (c.frames[0].toString() !== 'still here') throw new Error('wrong echo');
  c.s.destroy();
});

const LOADGEN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'Release', 'ww_loadgen');
if (existsSync(LOADGEN)) {
  await check('ww_loadgen: 32 connections x 8 pipelined 200-byte frames for 2 s, byte-exact', async () => {
    const out = await new Promise((resolve) => {
      const p = spawn(LOADGEN, ['--host', '127.0.0.1', '--port', String(port), '--connections', '32', '--pipeline', '8',
        '--size', '200', '--duration', '2', '--warmup', '0.2', '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      p.stdout.on('data', (d) => (text += d));
      p.on('exit', (code) => resolve({ code, text }));
    });
    const line = out.text.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error('no RESULT line: ' + out.text);
    const r = JSON.parse(line.slice(7));
    if (!r.ok || r.mismatches || r.errors || r.conn_errors || out.code !== 0 || !(r.replies > 0))
      throw new Error('loadgen: ' + line);
    checks.push(`     (${r.replies} replies, ${Math.round(r.rate)}/s under Wine; correctness only, not a benchmark)`);
  });
} else {
  checks.push('skip ww_loadgen (build/Release/ww_loadgen is not built: npm install builds it)');
}

server.kill('SIGTERM');
const exit = await serverExit;
const failed = checks.filter((l) => l.startsWith('FAIL'));
for (const l of checks) console.log('  ' + l);
console.log(`linux-clients: ${checks.length - failed.length}/${checks.length} checks passed; server exit ${exit}`);
if (failed.length) console.error(readFileSync(logFile, 'utf8'));
process.exit(failed.length ? 1 : 0);
