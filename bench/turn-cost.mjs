#!/usr/bin/env node
// Worker cost of an actor turn: what one `echo` request costs the worker
// thread that runs it (decode, context, handler, reply encoding, timing,
// result assembly), without the network, the ring or the main thread.
//
// One worker of the real pool (dist/workers/actor-worker.js, the echo actor
// of examples/) is handed tasks laid out as src/actor/wire.ts draws them:
// T turns of one request each, as the server builds them under 100 x 1
// load.  The figure is the worker's own TaskResult.busyMs divided by the
// turns, median over the tasks: the time the task held the thread.  Tasks
// run one at a time, so nothing else competes for that thread.
//
// The rival, in the same run: the same T requests answered the way the
// node:net twin of the application does it (bench/servers/proto-echo.mjs
// handleFrames: decode, answer, encode into one batch), timed around each
// batch on the main thread.  The difference is what the actor machinery
// (contexts, per-request timing, the task and result layouts) adds.
//
//   npm run bench:turn          [-- --turns 100 --tasks 2000]
import os from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { Piscina } from 'piscina';
import { ACTOR_DEFAULTS } from '../dist/src/actor/options.js';
import { TASK_REQUEST_HEADER, TASK_TURN_HEADER, workerInit } from '../dist/src/actor/wire.js';
import { makeCodec } from './servers/proto-echo.mjs';

const { values } = parseArgs({
  options: {
    turns: { type: 'string', default: '100' },
    tasks: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '500' },
  },
});
const turns = Number(values.turns);
const tasks = Number(values.tasks);
const warmup = Number(values.warmup);
for (const [k, v] of Object.entries({ turns, tasks, warmup })) {
  if (!Number.isInteger(v) || v < (k === 'warmup' ? 0 : 1)) {
    console.error(`turn-cost: --${k} must be a whole number${k === 'warmup' ? '' : ' >= 1'}`);
    process.exit(2);
  }
}

// The request ww_loadgen replays in the benchmarks: a 64-byte body, prefix stripped.
const prefixed = readFileSync(fileURLToPath(new URL('./frames/echo-64.bin', import.meta.url)));
const frame = prefixed.subarray(4, 4 + prefixed.readUInt32LE(0));
const PEER = '127.0.0.1';

function task() {
  const per = TASK_TURN_HEADER + PEER.length + TASK_REQUEST_HEADER + frame.length;
  const buf = Buffer.alloc(per * turns);
  const now = Number(process.hrtime.bigint()) / 1e6;
  for (let i = 0, pos = 0; i < turns; i++) {
    buf.writeDoubleLE(i + 1, pos);
    buf[pos + 8] = 0; // TurnKind.REQUESTS
    buf[pos + 9] = buf.write(PEER, pos + TASK_TURN_HEADER, 'latin1');
    buf.writeUInt16LE(40000 + i, pos + 10);
    buf[pos + 12] = 4;
    buf.writeInt32LE(-1, pos + 16); // no state yet
    buf.writeUInt32LE(1, pos + 20);
    pos += TASK_TURN_HEADER + PEER.length;
    buf.writeUInt32LE(frame.length, pos);
    buf.writeDoubleLE(now, pos + 4);
    frame.copy(buf, pos + TASK_REQUEST_HEADER);
    pos += TASK_REQUEST_HEADER + frame.length;
  }
  return { count: turns, buf: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), infos: null };
}

const pool = new Piscina({
  filename: fileURLToPath(new URL('../dist/workers/actor-worker.js', import.meta.url)),
  minThreads: 1,
  maxThreads: 1,
  idleTimeout: 60_000,
  atomics: 'async',
  workerData: workerInit(new URL('../examples/echo-actor.mjs?workUs=0', import.meta.url).href, ACTOR_DEFAULTS),
});

// The rival: the twin's per-chunk handler over the same requests, prefixed as on the wire.
const { handleFrames } = makeCodec();
const whole = Buffer.concat(Array.from({ length: turns }, () => prefixed.subarray(0, 4 + frame.length)));

// Each round runs one of each, so both see the same machine (this one's
// speed drifts by tens of percent over a minute).
const perTurnUs = [];
const twinUs = [];
for (let i = 0; i < warmup + tasks; i++) {
  const t = task();
  const r = await pool.run(t, { transferList: [t.buf.buffer] });
  if (r.count !== turns) throw new Error(`turn-cost: a task came back with ${r.count} turns, not ${turns}`);
  const t0 = performance.now();
  const out = handleFrames(whole, 0);
  const us = (1000 * (performance.now() - t0)) / turns;
  if (!out || out.length === 0) throw new Error('turn-cost: the twin answered nothing');
  if (i >= warmup) {
    perTurnUs.push((1000 * r.busyMs) / turns);
    twinUs.push(us);
  }
}
await pool.destroy();

const q = (a, p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];
const row = (name, a) => {
  a.sort((x, y) => x - y);
  return `| ${name} | ${q(a, 0.5).toFixed(2)} us | ${q(a, 0.1).toFixed(2)} us | ${q(a, 0.9).toFixed(2)} us |`;
};
console.log(`echo request, ${turns} per batch, ${tasks} batches after ${warmup} warm-up; per request:\n`);
console.log('| path | median | p10 | p90 |');
console.log('|---|---:|---:|---:|');
console.log(row('actor turn in a worker (TaskResult.busyMs / turns)', perTurnUs));
console.log(row('node:net twin, decode + answer + encode (proto-echo.mjs)', twinUs));
console.log(`\nratio actor / twin (medians): ${(q(perTurnUs, 0.5) / q(twinUs, 0.5)).toFixed(2)}x`);
console.log(`${os.cpus()[0]?.model ?? 'cpu'}, Linux ${os.release()}, Node ${process.version}, ${new Date().toISOString()}`);
