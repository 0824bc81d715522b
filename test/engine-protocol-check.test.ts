// The I/O thread's protocol check (protocolCheck: true) agrees with the
// TypeScript decoder: for valid messages and thousands of random mutations
// of them, the native verdict is the code readHeader() fails with (or 0 when
// the header and CRC are sound).
import { afterEach, describe, expect, it } from 'vitest';
import { listenRaw, type RawServer } from '../src/index.js';
import { ErrorCode, MessageEncoder, Messages, ProtocolError, readHeader } from '../src/protocol/index.js';
import { backendCases } from './fixtures/backends.js';
import { FramedClient, frame } from './fixtures/framed-client.js';

const servers: RawServer[] = [];
const clients: FramedClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

function tsVerdict(msg: Uint8Array): number {
  if (msg.length === 0) return 0;
  try {
    readHeader(msg);
    return 0;
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return (e as ProtocolError).code;
  }
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.each(backendCases)('native protocol check: $title', ({ name, available }) => {
  it.skipIf(!available)('agrees with the TypeScript header check on valid and mutated messages', async () => {
    const verdicts: number[] = [];
    const server = listenRaw({ backend: name, protocolCheck: true }, {
      frame(_conn, _data, check) {
        verdicts.push(check);
      },
    });
    servers.push(server);
    const enc = new MessageEncoder();
    const valid: Buffer[] = [
      enc.encode(Messages.request(1, 'echo', { hello: 'world', n: [1, 2, 3] }, { checksum: true })),
      enc.encode(Messages.request(2, 'upload', null, { checksum: true, attachment: Buffer.alloc(5000, 7), compress: true })),
      enc.encode(Messages.request(3, 'plain', 'no checksum')),
      enc.encode(Messages.ping(9)),
    ];
    const random = rng(42);
    const sent: Buffer[] = [];
    for (const v of valid) sent.push(v);
    for (let i = 0; i < 3000; i++) {
      const base = valid[i % valid.length]!;
      const m = Buffer.from(base);
      const flips = 1 + Math.floor(random() * 3);
      for (let k = 0; k < flips; k++) {
        // Bias mutations to the header, where the rules live.
        const at = random() < 0.7 ? Math.floor(random() * Math.min(28, m.length)) : Math.floor(random() * m.length);
        m[at] = Math.floor(random() * 256);
      }
      sent.push(random() < 0.1 ? m.subarray(0, Math.floor(random() * m.length)) : m);
    }
    const c = await FramedClient.connect(server.port);
    clients.push(c);
    c.sendRaw(Buffer.concat(sent.map((m) => frame(m))));
    const deadline = Date.now() + 20_000;
    while (verdicts.length < sent.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(verdicts.length).toBe(sent.length);
    expect(verdicts.slice(0, valid.length)).toEqual([0, 0, 0, 0]);
    let disagree = 0;
    const seen = new Set<number>();
    for (let i = 0; i < sent.length; i++) {
      const native = verdicts[i]!;
      const ts = tsVerdict(sent[i]!);
      seen.add(native);
      // Native checks the fixed-offset rules only; the TS decoder may also
      // refuse a message native passed (per-kind rules), never the reverse.
      if (native !== 0 ? native !== ts : ts !== 0 && ![ErrorCode.BAD_MESSAGE].includes(ts as 1)) {
        disagree++;
        if (process.env.WW_DEBUG && disagree < 8) console.log(native, ts, sent[i]!.subarray(0, 28).toString("hex"), sent[i]!.length);
      }
    }
    expect(disagree).toBe(0);
    // The mutations exercised every code the native check can give.
    for (const code of [0, ErrorCode.BAD_MESSAGE, ErrorCode.BAD_MAGIC, ErrorCode.UNKNOWN_VERSION, ErrorCode.UNKNOWN_KIND, ErrorCode.BAD_CHECKSUM]) {
      expect(seen.has(code), `code ${code} seen`).toBe(true);
    }
  });

  it.skipIf(!available)('reports -1 when the check is off', async () => {
    const verdicts: number[] = [];
    const server = listenRaw({ backend: name }, { frame: (_c, _d, check) => verdicts.push(check) });
    servers.push(server);
    const c = await FramedClient.connect(server.port);
    clients.push(c);
    c.send(Buffer.from('not a protocol message'));
    const deadline = Date.now() + 5000;
    while (verdicts.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(verdicts).toEqual([-1]);
  });
});
