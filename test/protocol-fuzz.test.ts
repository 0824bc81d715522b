// Property and fuzz tests with a deterministic PRNG (mulberry32) and bounded
// counts: every run sees the same inputs, so a failure reproduces by seed.
import { describe, expect, test } from 'vitest';
import {
  FrameReader,
  MessageDecoder,
  MessageEncoder,
  Messages,
  type OutgoingMessage,
  ProtocolError,
  scanMsgpack,
} from '../src/protocol/index.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const encoder = new MessageEncoder();
const decoder = new MessageDecoder({ maxBodyBytes: 1 << 20, maxAttachmentBytes: 1 << 20, maxDecompressedBytes: 1 << 20 });

type Outcome = 'ok' | ProtocolError;
/** Decodes; anything but a message or a ProtocolError fails the test. */
function outcome(frame: Uint8Array): Outcome {
  try {
    decoder.decode(frame);
    return 'ok';
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw new Error(`untyped error escaped the decoder: ${String(e)}`);
    // A whole frame is never "incomplete".
    expect(e.incomplete).toBe(false);
    expect(e.code).toBeGreaterThan(0);
    return e;
  }
}

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (rand() * 256) | 0;
  return b;
}

function randomValue(rand: () => number, depth = 0): unknown {
  const r = rand();
  if (depth > 4 || r < 0.35) {
    const s = rand();
    if (s < 0.15) return null;
    if (s < 0.25) return rand() < 0.5;
    if (s < 0.45) return Math.floor((rand() - 0.5) * 2 ** (1 + Math.floor(rand() * 52)));
    if (s < 0.55) return (rand() - 0.5) * 1e6;
    if (s < 0.8) return 'é漢a-'.repeat(Math.floor(rand() * 10)) + String(Math.floor(rand() * 1000));
    if (s < 0.9) return randomBytes(rand, Math.floor(rand() * 40));
    // bigint beyond 2^53 (smaller ones decode as numbers, by design).
    return 2n ** 60n + BigInt(Math.floor(rand() * 2 ** 40));
  }
  if (r < 0.65) return Array.from({ length: Math.floor(rand() * 6) }, () => randomValue(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = 0, n = Math.floor(rand() * 6); i < n; i++) o[`k${Math.floor(rand() * 100)}`] = randomValue(rand, depth + 1);
  return o;
}

function randomMessage(rand: () => number): OutgoingMessage {
  const opts = {
    checksum: rand() < 0.5,
    compress: rand() < 0.3,
    attachment: rand() < 0.4 ? (rand() < 0.5 ? randomBytes(rand, Math.floor(rand() * 600)) : Buffer.alloc(Math.floor(rand() * 2000), 7)) : undefined,
  };
  const body = rand() < 0.15 ? undefined : randomValue(rand);
  const id = 1 + Math.floor(rand() * 0xfffffffe);
  switch (Math.floor(rand() * 7)) {
    case 0: return Messages.request(id, 'act' + Math.floor(rand() * 9), body, opts);
    case 1: return Messages.reply(id, body, opts);
    case 2: return Messages.error(id, 1 + Math.floor(rand() * 20), 'err', body, { checksum: opts.checksum });
    case 3: return Messages.push(rand() < 0.5 ? 'topic' : undefined, body, opts);
    case 4: return Messages.ping(id, { checksum: opts.checksum });
    case 5: return Messages.pong(id, { checksum: opts.checksum });
    default: return Messages.goAway(Math.floor(rand() * 20), 'bye', undefined, { checksum: opts.checksum });
  }
}

describe('fuzz', () => {
  test('random messages round-trip exactly (2000 messages)', () => {
    const rand = mulberry32(1);
    for (let i = 0; i < 2000; i++) {
      const msg = randomMessage(rand);
      const m = decoder.decode(encoder.encode(msg));
      expect(m.kind).toBe(msg.kind);
      expect(m.id).toBe(msg.id ?? 0);
      expect(m.body).toEqual(msg.body);
      expect(m.attachment.equals(msg.attachment ?? Buffer.alloc(0))).toBe(true);
    }
  });

  test('random bytes never escape as untyped errors (5000 inputs)', () => {
    const rand = mulberry32(2);
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      const frame = randomBytes(rand, Math.floor(rand() * 120));
      // Half the inputs start like a real message so they reach deeper checks.
      if (i % 2 === 0 && frame.length >= 2) { frame[0] = 0x57; frame[1] = 1; }
      if (outcome(frame) === 'ok') accepted++;
    }
    expect(accepted).toBeLessThan(50);
  });

  test('single mutations of valid frames give a message or a typed error; checksummed frames never pass (3000 mutations)', () => {
    const rand = mulberry32(3);
    const codes = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const msg = randomMessage(rand);
      const good = encoder.encode(msg);
      let bad: Buffer;
      const which = Math.floor(rand() * 6);
      if (which === 0) { bad = Buffer.from(good); bad[Math.floor(rand() * bad.length)]! ^= 1 << Math.floor(rand() * 8); }
      else if (which === 1) { bad = Buffer.from(good); bad[Math.floor(rand() * Math.min(bad.length, 28))] = (rand() * 256) | 0; }
      else if (which === 2) bad = good.subarray(0, Math.floor(rand() * good.length));
      else if (which === 3) bad = Buffer.concat([good, randomBytes(rand, 1 + Math.floor(rand() * 8))]);
      else if (which === 4) { bad = Buffer.from(good); bad.writeUInt32LE((rand() * 2 ** 32) >>> 0, 12 + 4 * Math.floor(rand() * 4)); }
      else { const at = Math.floor(rand() * good.length); bad = Buffer.concat([good.subarray(0, at), randomBytes(rand, 1), good.subarray(at)]); }
      if (bad.equals(good)) continue;
      const r = outcome(bad);
      if (r !== 'ok') codes.set(r.codeName, (codes.get(r.codeName) ?? 0) + 1);
      if (msg.checksum) expect(r, `mutation ${which} of a checksummed ${msg.kind} passed`).not.toBe('ok');
    }
    // The mutations reach many different checks, not one early exit.
    expect(codes.size).toBeGreaterThanOrEqual(5);
    expect(codes.get('BAD_CHECKSUM')).toBeGreaterThan(100);
  });

  test('random msgpack bodies: whatever the scanner admits, msgpackr decodes (4000 bodies)', () => {
    const rand = mulberry32(4);
    let admitted = 0;
    for (let i = 0; i < 4000; i++) {
      // Bias towards structure bytes so some bodies are valid.
      const body = randomBytes(rand, 1 + Math.floor(rand() * 24));
      for (let j = 0; j < body.length; j++) if (rand() < 0.5) body[j] = [0x92, 0x81, 0xa1, 0x01, 0xc0, 0xc3, 0x7f, 0xe0][Math.floor(rand() * 8)]!;
      if (scanMsgpack(body, 0, body.length, 64) !== null) continue;
      admitted++;
      const frame = encoder.encode(Messages.reply(1));
      const f = Buffer.concat([frame, body]);
      f.writeUInt32LE(body.length, 12);
      f.writeUInt32LE(body.length, 16);
      expect(outcome(f)).toBe('ok');
    }
    expect(admitted).toBeGreaterThan(100);
  });

  test('FrameReader reassembles random frames from random chunk sizes (200 streams)', () => {
    const rand = mulberry32(5);
    for (let s = 0; s < 200; s++) {
      const frames = Array.from({ length: 1 + Math.floor(rand() * 20) }, () => encoder.encodePrefixed(randomMessage(rand)));
      const stream = Buffer.concat(frames);
      const got: Buffer[] = [];
      const reader = new FrameReader((f) => got.push(f));
      for (let i = 0; i < stream.length; ) {
        const n = 1 + Math.floor(rand() * (rand() < 0.5 ? 8 : 4096));
        reader.push(stream.subarray(i, i + n));
        i += n;
      }
      expect(got.length).toBe(frames.length);
      for (let i = 0; i < frames.length; i++) expect(got[i]!.equals(frames[i]!.subarray(4))).toBe(true);
    }
  });
});
