#!/usr/bin/env node
// Ring drain micro-benchmarks (tinybench; prints bench.table()).
//
//   npm run bench:ring            (or: node bench/ring-drain.mjs [--time <ms>] [--no-engine])
//
// Two parts, each with its rival in the same run:
//
// 1. A model of the JS side of the completion ring, in pure JavaScript over a
//    SharedArrayBuffer laid out with src/layout.ts's offsets (control area,
//    ring header with tail/head/stalled, 16-byte records: u16 kind, u16
//    flags, u32 length, f64 token).  The ring is filled once with a batch of
//    FRAME records; every iteration rewinds head and drains the batch the way
//    RawServer's #drainRing does (acquire-load tail once, walk the records,
//    hand each frame out as a view, publish head once).  Rivals: publishing
//    head after every record, making the views with Buffer.from instead of
//    src/view.ts's viewOf, and copying every frame into a fresh Buffer
//    (what a design that hands each message its own allocation pays).  One
//    task also echoes every frame into a send batch (the entry format of
//    SendBatch in src/engine.ts), i.e. all the JS work of the raw echo.
//    No native code and no I/O: it shows what the drain loop itself costs
//    per frame, nothing about the I/O threads.
//
// 2. The real engine: a whirlwind raw server and a node:net server in this
//    process, each fed the same burst of frames by a loopback client in one
//    write; one iteration lasts until the server's handler has seen every
//    frame of the burst.  This includes the kernel, the I/O thread, the ring
//    and the JS drain (whirlwind) or libuv and the 'data' events (node:net).
//    Skipped with --no-engine or when no backend is available.
//
// Numbers are per iteration (one batch / one burst); the line under the
// table divides by the frames per iteration.
import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { LAYOUT } from '../dist/src/layout.js';
import { listenRaw, probeBackends } from '../dist/src/index.js';
import { viewOf } from '../dist/src/view.js';
import { onFrames } from './servers/common.mjs';

const { values: args } = parseArgs({
  options: {
    time: { type: 'string', default: '700' },
    'no-engine': { type: 'boolean', default: false },
  },
  strict: true,
});
const TIME_MS = Number(args.time);
if (!Number.isFinite(TIME_MS) || TIME_MS <= 0) {
  console.error(`ring-drain: --time must be a positive number of milliseconds, got '${args.time}'`);
  process.exit(2);
}

const FRAMES = 256; // records per drained batch (part 1)
const PAYLOAD = 64; // bytes per frame, as in bench/run.mjs
const BURST = 1000; // frames per burst (part 2)

// ---------------------------------------------------------------------------
// Part 1: the model ring
// ---------------------------------------------------------------------------

const RING_BYTES = 1 << 20;
const sab = new SharedArrayBuffer(LAYOUT.controlBytes + LAYOUT.ringHeaderBytes + RING_BYTES);
const hdr = LAYOUT.controlBytes;
const DATA = hdr + LAYOUT.ringHeaderBytes;
const HEAD = (hdr + LAYOUT.ringHead) >> 2;
const TAIL = (hdr + LAYOUT.ringTail) >> 2;
const STALLED = (hdr + LAYOUT.ringStalled) >> 2;
const MASK = RING_BYTES - 1;
const u16 = new Uint16Array(sab);
const u32 = new Uint32Array(sab);
const f64 = new Float64Array(sab);
const u8 = new Uint8Array(sab);

/** Producer side, once: FRAMES frame records of PAYLOAD bytes, tail released last. */
function fill() {
  let tail = 0;
  for (let i = 0; i < FRAMES; i++) {
    const off = DATA + (tail & MASK);
    u16[off >> 1] = LAYOUT.recFrame;
    u16[(off + 2) >> 1] = 0;
    u32[(off + 4) >> 2] = PAYLOAD;
    f64[(off + 8) >> 3] = (i % 100) + 1; // a token per "connection"
    u8.fill(i & 0xff, off + LAYOUT.recordHeaderBytes, off + LAYOUT.recordHeaderBytes + PAYLOAD);
    tail = (tail + ((LAYOUT.recordHeaderBytes + PAYLOAD + LAYOUT.recordAlign - 1) & ~(LAYOUT.recordAlign - 1))) >>> 0;
  }
  Atomics.store(u32, TAIL, tail);
}
fill();

const rewind = () => Atomics.store(u32, HEAD, 0);

/**
 * The engine's drain: one acquire-load of tail, walk, one head publish at the
 * end (plus one every 256 records, as #drainRing does for long batches).
 */
function drainBatched(onFrame) {
  let head = u32[HEAD];
  const tail = Atomics.load(u32, TAIL);
  let count = 0;
  while (head !== tail) {
    const off = DATA + (head & MASK);
    const kind = u16[off >> 1];
    const len = u32[(off + 4) >> 2];
    head = (head + ((LAYOUT.recordHeaderBytes + len + 15) & ~15)) >>> 0;
    if (kind === LAYOUT.recFrame) onFrame(f64[(off + 8) >> 3], off + 16, len);
    if ((++count & 255) === 0) {
      Atomics.store(u32, HEAD, head);
      if (Atomics.load(u32, STALLED) !== 0) throw new Error('model ring never stalls');
    }
  }
  Atomics.store(u32, HEAD, head);
  return count;
}

/** Rival: publish head (and check stalled) after every record. */
function drainPerRecord(onFrame) {
  let head = u32[HEAD];
  const tail = Atomics.load(u32, TAIL);
  let count = 0;
  while (head !== tail) {
    const off = DATA + (head & MASK);
    const kind = u16[off >> 1];
    const len = u32[(off + 4) >> 2];
    head = (head + ((LAYOUT.recordHeaderBytes + len + 15) & ~15)) >>> 0;
    if (kind === LAYOUT.recFrame) onFrame(f64[(off + 8) >> 3], off + 16, len);
    Atomics.store(u32, HEAD, head);
    if (Atomics.load(u32, STALLED) !== 0) throw new Error('model ring never stalls');
    count++;
  }
  return count;
}

let sink = 0; // keeps the handlers' work observable
const viewFrame = (token, p, len) => {
  const data = viewOf(sab, p, len); // a view, as RawServer hands out
  sink += data[0] + token;
};
const fromFrame = (token, p, len) => {
  const data = Buffer.from(sab, p, len); // the same view, through Buffer.from's checks
  sink += data[0] + token;
};
const copyFrame = (token, p, len) => {
  const data = Buffer.allocUnsafe(len); // one (pooled) allocation per message
  data.set(u8.subarray(p, p + len));
  sink += data[0] + token;
};

// The send batch of src/engine.ts (SendBatch.entry + RawServer.send): a
// 16-byte entry header (f64 token, u32 n, u32 op) then the u32 length prefix
// and the payload, 8-aligned.
const batch = Buffer.allocUnsafe(1 << 20);
const bf64 = new Float64Array(batch.buffer, batch.byteOffset, batch.length >> 3);
const bu32 = new Uint32Array(batch.buffer, batch.byteOffset, batch.length >> 2);
let batchLen = 0;
const echoFrame = (token, p, len) => {
  const data = viewOf(sab, p, len);
  const n = len + 4;
  const at = batchLen;
  bf64[at >> 3] = token;
  bu32[(at + 8) >> 2] = n;
  bu32[(at + 12) >> 2] = LAYOUT.opSend;
  batchLen = at + LAYOUT.batchHeaderBytes + ((n + 7) & ~7);
  bu32[(at + 16) >> 2] = len;
  batch.set(data, at + 20);
};

// Self-check before timing: every variant sees every frame.
for (const [name, drain, fn] of [['batched', drainBatched, viewFrame], ['per-record', drainPerRecord, copyFrame]]) {
  rewind();
  const n = drain(fn);
  if (n !== FRAMES) throw new Error(`ring-drain: ${name} drained ${n} of ${FRAMES} records`);
}

const model = new Bench({ time: TIME_MS, warmupTime: 100 });
model
  .add(`drain ${FRAMES} frames, head published once (engine)`, () => {
    rewind();
    drainBatched(viewFrame);
  })
  .add(`rival: head published per record`, () => {
    rewind();
    drainPerRecord(viewFrame);
  })
  .add(`rival: views made with Buffer.from(arrayBuffer, offset, length)`, () => {
    rewind();
    drainBatched(fromFrame);
  })
  .add(`rival: every frame copied into its own Buffer`, () => {
    rewind();
    drainBatched(copyFrame);
  })
  .add(`drain + echo each frame into a send batch (raw echo's JS work)`, () => {
    rewind();
    batchLen = 0;
    drainBatched(echoFrame);
  });

// ---------------------------------------------------------------------------
// Part 2: the real engine against node:net, one burst per iteration
// ---------------------------------------------------------------------------

function burstBuffer() {
  const b = Buffer.alloc(BURST * (4 + PAYLOAD), 0x5a);
  for (let i = 0; i < BURST; i++) b.writeUInt32LE(PAYLOAD, i * (4 + PAYLOAD));
  return b;
}

/** A counter the server side bumps; `until()` resolves when it reaches n (or rejects after 5 s). */
function frameCounter() {
  const c = { seen: 0, want: 0, resolve: null, reject: null, timer: null };
  c.add = (k) => {
    c.seen += k;
    if (c.resolve && c.seen >= c.want) {
      clearTimeout(c.timer);
      const r = c.resolve;
      c.resolve = null;
      r();
    }
  };
  c.until = (n) => new Promise((resolve, reject) => {
    c.want = c.seen + n;
    c.resolve = resolve;
    c.timer = setTimeout(() => reject(new Error(`only ${c.seen - (c.want - n)} of ${n} frames arrived in 5 s`)), 5000);
  });
  return c;
}

const connect = (port) => new Promise((resolve, reject) => {
  const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s));
  s.once('error', reject);
});

let engine = null;
const available = args['no-engine'] ? [] : probeBackends().filter((b) => b.available);
if (args['no-engine']) console.log('part 2 skipped: --no-engine');
else if (available.length === 0) console.log(`part 2 skipped: no backend available (${probeBackends().map((b) => `${b.name}: ${b.reason}`).join('; ')})`);
else {
  const burst = burstBuffer();
  engine = new Bench({ time: TIME_MS, warmupTime: 200 });
  const cleanups = [];
  for (const b of available) {
    const counter = frameCounter();
    const server = listenRaw({ host: '127.0.0.1', port: 0, backend: b.name }, { frame() { counter.add(1); } });
    const client = await connect(server.port);
    client.on('data', () => {});
    cleanups.push(async () => { client.destroy(); await server.close(); });
    engine.add(`whirlwind ${b.name}: ${BURST}-frame burst in, every frame seen by JS`, async () => {
      const done = counter.until(BURST);
      client.write(burst);
      await done;
    });
  }
  {
    const counter = frameCounter();
    const server = net.createServer({ noDelay: true }, (socket) => onFrames(socket, (_whole, count) => counter.add(count)));
    await new Promise((r) => server.listen({ port: 0, host: '127.0.0.1' }, r));
    const client = await connect(server.address().port);
    cleanups.push(async () => { client.destroy(); await new Promise((r) => server.close(r)); });
    engine.add(`rival: node:net, same burst, frames split per 'data' chunk`, async () => {
      const done = counter.until(BURST);
      client.write(burst);
      await done;
    });
  }
  engine.cleanups = cleanups;
}

// ---------------------------------------------------------------------------

console.log(`${new Date().toISOString()}  node ${process.version}  ${os.type()} ${os.release()}  ${os.cpus()[0]?.model ?? ''} x${os.cpus().length}`);
await model.run();
console.log(`\nPart 1: model ring (src/layout.ts offsets), ${FRAMES} frame records of ${PAYLOAD} bytes per iteration`);
console.table(model.table());
for (const t of model.tasks) {
  const ns = t.result?.latency?.mean;
  if (ns !== undefined) console.log(`  ${t.name}: ${((ns * 1e6) / FRAMES).toFixed(1)} ns per frame`);
}
if (sink === 0.5) console.log(sink); // never true; keeps the work from being optimised away

if (engine) {
  await engine.run();
  console.log(`\nPart 2: real servers in this process, ${BURST} frames of ${PAYLOAD} bytes per burst from a loopback client`);
  console.table(engine.table());
  for (const t of engine.tasks) {
    const ms = t.result?.latency?.mean;
    if (ms !== undefined) console.log(`  ${t.name}: ${((ms * 1e6) / BURST).toFixed(0)} ns per frame`);
  }
  for (const c of engine.cleanups) await c();
}
