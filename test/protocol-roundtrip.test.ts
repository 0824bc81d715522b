import { describe, expect, test } from 'vitest';
import {
  CHECKSUM_BYTES,
  ErrorCode,
  Flag,
  FrameReader,
  HEADER_BYTES,
  Kind,
  MessageDecoder,
  MessageEncoder,
  Messages,
  type OutgoingMessage,
  PREFIX_BYTES,
  ProtocolError,
  readHeader,
  sliceFrame,
} from '../src/protocol/index.js';
import { packBody, unpackBody } from '../src/protocol/msgpack.js';
import { Packr, Unpackr } from 'msgpackr';

const encoder = new MessageEncoder();
const decoder = new MessageDecoder();

function bytes(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

describe('every kind round-trips through the encoder and decoder', () => {
  const cases: Array<[string, OutgoingMessage, Record<string, unknown>]> = [
    ['REQUEST', Messages.request(7, 'users.get', { id: 3 }), { kind: Kind.REQUEST, id: 7, action: 'users.get', body: { id: 3 } }],
    ['REQUEST with a non-ASCII action', Messages.request(8, 'grüße/日本', [1]), { action: 'grüße/日本', body: [1] }],
    ['REPLY', Messages.reply(7, { name: 'ada' }), { kind: Kind.REPLY, id: 7, body: { name: 'ada' } }],
    ['REPLY without body', Messages.reply(9), { kind: Kind.REPLY, id: 9, body: undefined }],
    ['REPLY with a nil body', Messages.reply(9, null), { body: null }],
    ['ERROR', Messages.error(7, ErrorCode.OVERLOADED, 'busy', { retryIn: 5 }), { kind: Kind.ERROR, id: 7, code: 14, body: { message: 'busy', data: { retryIn: 5 } } }],
    ['ERROR with id 0', Messages.error(0, ErrorCode.BAD_MESSAGE, 'what?'), { id: 0, code: 1, body: { message: 'what?' } }],
    ['PUSH with topic', Messages.push('news', 'hi'), { kind: Kind.PUSH, id: 0, action: 'news', body: 'hi' }],
    ['PUSH without topic', Messages.push(undefined, 1), { kind: Kind.PUSH, action: '', body: 1 }],
    ['PING', Messages.ping(0xffffffff), { kind: Kind.PING, id: 0xffffffff, body: undefined }],
    ['PONG', Messages.pong(5), { kind: Kind.PONG, id: 5 }],
    ['GOAWAY', Messages.goAway(ErrorCode.SHUTTING_DOWN, 'bye'), { kind: Kind.GOAWAY, code: 15, body: { message: 'bye' } }],
    ['GOAWAY normal', Messages.goAway(ErrorCode.NONE, 'done'), { kind: Kind.GOAWAY, code: 0 }],
  ];
  for (const [name, msg, expected] of cases) {
    for (const checksum of [false, true]) {
      test(`${name} (checksum ${checksum})`, () => {
        const frame = encoder.encode({ ...msg, checksum });
        const decoded = decoder.decode(frame);
        expect(decoded).toMatchObject(expected);
        expect((decoded.flags & Flag.CHECKSUM) !== 0).toBe(checksum);
      });
    }
  }
});

test('3000 distinct action names (ASCII and not) decode to themselves, however decoded names are cached', () => {
  for (let i = 0; i < 3000; i++) {
    const action = i % 3 === 0 ? `añción-${i}` : `action.${i}`;
    expect(decoder.decode(encoder.encode(Messages.request(1, action))).action).toBe(action);
  }
  // Same lengths, different bytes, decoded back to back.
  expect(decoder.decode(encoder.encode(Messages.request(1, 'ab'))).action).toBe('ab');
  expect(decoder.decode(encoder.encode(Messages.request(1, 'ba'))).action).toBe('ba');
});

describe('attachments and compression', () => {
  for (const size of [0, 1, 255, 256, 65_536, 3 * 1024 * 1024]) {
    for (const compress of [false, true, 'body', 'attachment'] as const) {
      for (const checksum of [false, true]) {
        test(`attachment ${size} B, compress ${compress}, checksum ${checksum}`, () => {
          const attachment = bytes(size);
          const body = { text: 'abc'.repeat(200), size };
          const frame = encoder.encode(Messages.request(1, 'up', body, { attachment, compress, checksum }));
          const h = readHeader(frame);
          const m = decoder.decode(frame);
          expect(m.body).toEqual(body);
          expect(m.attachment.equals(attachment)).toBe(true);
          expect(h.attachLength).toBe(size);
          expect(h.bodyLength).toBeGreaterThan(0);
          const bodyCompressed = compress === true || compress === 'body';
          // The pattern repeats every 256 bytes: only longer attachments shrink.
          const attachCompressed = (compress === true || compress === 'attachment') && size >= 65_536;
          expect((h.flags & Flag.BODY_DEFLATE) !== 0).toBe(bodyCompressed);
          expect((h.flags & Flag.ATTACHMENT_DEFLATE) !== 0).toBe(attachCompressed);
          if (bodyCompressed) expect(h.bodyWireLength).toBeLessThan(h.bodyLength);
        });
      }
    }
  }

  test('incompressible data is sent uncompressed even when compression is asked for', () => {
    const random = Buffer.alloc(4096);
    let x = 12345;
    for (let i = 0; i < random.length; i++) random[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    const h = readHeader(encoder.encode(Messages.reply(1, undefined, { attachment: random, compress: true })));
    expect(h.flags & Flag.ATTACHMENT_DEFLATE).toBe(0);
    expect(h.attachWireLength).toBe(4096);
  });

  test('sections below compressThreshold are not compressed', () => {
    const e = new MessageEncoder({ compressThreshold: 10_000 });
    const h = readHeader(e.encode(Messages.reply(1, 'x'.repeat(5000), { compress: true })));
    expect(h.flags & Flag.BODY_DEFLATE).toBe(0);
  });

  test('copyBuffers decides whether the attachment is a view of the frame or a copy', () => {
    const frame = encoder.encode(Messages.reply(1, undefined, { attachment: Buffer.from('abc') }));
    const view = new MessageDecoder({ copyBuffers: false }).decode(frame).attachment;
    const copy = new MessageDecoder({ copyBuffers: true }).decode(frame).attachment;
    frame[frame.length - 1] = 0x7a; // 'c' -> 'z'
    expect(view.toString()).toBe('abz');
    expect(copy.toString()).toBe('abc');
  });
});

describe('byte-array bodies (packed and unpacked without msgpackr)', () => {
  // msgpackr with the codec's options, as the reference for the bytes.
  const opts = { useRecords: false, mapsAsObjects: true, structuredClone: false, moreTypes: false, int64AsType: 'auto' } as never;
  const refPack = new Packr({ useRecords: false, moreTypes: false, structuredClone: false, bundleStrings: false, encodeUndefinedAsNil: true, useFloat32: 0 });
  const refCopy = new Unpackr({ ...(opts as object), copyBuffers: true });
  const refView = new Unpackr({ ...(opts as object), copyBuffers: false });
  const sizes = [0, 1, 255, 256, 65_535, 65_536, 70_000];

  test('packBody writes bin 8/16/32 exactly as msgpackr does, for Buffers, Uint8Arrays and views at any offset', () => {
    for (const n of sizes) {
      const backing = bytes(n + 9);
      for (const v of [backing.subarray(3, 3 + n), new Uint8Array(backing.buffer, backing.byteOffset + 5, n), Buffer.from(backing.subarray(0, n))]) {
        const ours = Buffer.from(packBody(v));
        expect(ours.equals(Buffer.from(refPack.pack(v))), `${n} bytes, ${v.constructor.name}`).toBe(true);
        expect(ours[0]).toBe(n < 256 ? 0xc4 : n < 65_536 ? 0xc5 : 0xc6);
      }
    }
    // An array-like object is not a byte array: msgpackr's map.
    const like = { length: 2, 0: 1, 1: 2 };
    expect(Buffer.from(packBody(like)).equals(Buffer.from(refPack.pack(like)))).toBe(true);
    expect(packBody(like)[0]).toBe(0xde);
  });

  test('any other typed array or DataView as the body is a bin of its bytes, decoded back as those bytes', () => {
    const backing = new ArrayBuffer(64);
    new Uint8Array(backing).fill(0xee); // what msgpackr 2.1.3 would leak into the bin
    const f32 = new Float32Array(backing, 8, 3);
    f32.set([1.5, -2.25, 1e9]);
    const u16 = new Uint16Array([1, 258, 65535]);
    const dv = new DataView(backing, 8, 12);
    for (const v of [f32, u16, dv]) {
      const raw = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      const packed = Buffer.from(packBody(v));
      expect(packed[0]).toBe(0xc4);
      expect(packed[1]).toBe(v.byteLength);
      expect(packed.subarray(2).equals(raw)).toBe(true);
      const m = decoder.decode(encoder.encode(Messages.reply(1, v)));
      expect(Buffer.from(m.body as Uint8Array).equals(raw)).toBe(true);
    }
    const back = decoder.decode(encoder.encode(Messages.reply(1, f32))).body as Uint8Array;
    expect(Array.from(new Float32Array(Uint8Array.from(back).buffer))).toEqual([1.5, -2.25, 1e9]);
  });

  test('unpackBody gives what msgpackr gives: same bytes and type, a view of the frame or a copy of its own', () => {
    for (const n of sizes) {
      const packed = Buffer.from(packBody(bytes(n)));
      const frame = Buffer.concat([Buffer.from([9, 9, 9]), packed, Buffer.from([7])]);
      for (const src of [frame, new Uint8Array(frame)]) {
        for (const copy of [true, false]) {
          const ours = unpackBody(src as Buffer, 3, 3 + packed.length, copy) as Uint8Array;
          const ref = (copy ? refCopy : refView).unpack(src, { start: 3, end: 3 + packed.length }) as Uint8Array;
          const what = `${n} bytes, ${src.constructor.name}, copy ${copy}`;
          expect(Object.getPrototypeOf(ours), what).toBe(Object.getPrototypeOf(ref));
          expect(Buffer.from(ours).equals(Buffer.from(ref)), what).toBe(true);
          expect(ours.buffer === src.buffer, what).toBe(!copy);
          expect(ref.buffer === src.buffer, what).toBe(!copy);
        }
      }
    }
  });

  test('typed arrays and DataViews nested in arrays, objects, Maps and Sets are bins of their bytes; the rest of the body is untouched', () => {
    encoder.encode(Messages.reply(1, { fill: Buffer.alloc(512, 0xee) })); // stale bytes msgpackr 2.1.3 would reuse
    const f32 = new Float32Array([1.5, -2.25]);
    const u16 = new Uint16Array([1, 258]);
    const dv = new DataView(new ArrayBuffer(4));
    dv.setUint32(0, 0x01020304);
    const proto = JSON.parse('{"__proto__": {"x": 1}}') as Record<string, unknown>;
    const body = {
      list: [1, f32, 'a', [u16]],
      deep: { dv, n: null, when: new Date(0), bytes: Buffer.from('hi') },
      map: new Map<unknown, unknown>([['k', u16]]),
      set: new Set([f32]),
      proto,
    };
    const m = decoder.decode(encoder.encode(Messages.reply(1, body))).body as Record<string, any>;
    const raw = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    expect(Buffer.from(m.list[1]).equals(raw(f32))).toBe(true);
    expect(Buffer.from(m.list[3][0]).equals(raw(u16))).toBe(true);
    expect(Buffer.from(m.deep.dv).equals(raw(dv))).toBe(true);
    expect(Buffer.from(m.map.k).equals(raw(u16))).toBe(true);
    expect(Buffer.from(m.set[0]).equals(raw(f32))).toBe(true);
    expect([m.list[0], m.list[2], m.deep.n, m.deep.when.getTime(), m.deep.bytes.toString()]).toEqual([1, 'a', null, 0, 'hi']);
    // A key named __proto__ stays a key in the copy that is packed.
    const f32bytes = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
    expect(Buffer.from(packBody({ proto, v: f32 })).equals(Buffer.from(refPack.pack({ proto, v: f32bytes })))).toBe(true);
    // An object with a key named "constructor" is still a plain object.
    const ctorKey = decoder.decode(encoder.encode(Messages.reply(1, { constructor: 'x', v: f32 }))).body as Record<string, any>;
    expect(Buffer.from(ctorKey.v).equals(raw(f32))).toBe(true);
    // The caller's body is not changed.
    expect(body.list[1]).toBe(f32);
    expect(body.map.get('k')).toBe(u16);
    // A body without such views packs exactly as msgpackr packs it.
    const plain = { a: [1, 2, { b: Buffer.from('x') }], c: new Map([['d', 1]]) };
    expect(Buffer.from(packBody(plain)).equals(Buffer.from(refPack.pack(plain)))).toBe(true);
  });

  test('a body that refers to itself at several places is refused as msgpackr refuses it, after a bounded look', () => {
    const a: Record<string, unknown> = { n: 1 };
    a.x = a;
    a.y = a; // a walk of 64 levels would visit 2^64 values without the budget
    expect(() => packBody(a)).toThrow(RangeError);
  });

  test('a bin body round-trips through the encoder and decoder, and the packer\'s buffer is not kept by the frame', () => {
    const a = bytes(300);
    const b = Buffer.alloc(300, 0x55);
    const fa = encoder.encode(Messages.reply(1, a));
    encoder.encode(Messages.reply(2, b)); // reuses the scratch buffer fa's body was packed in
    const m = decoder.decode(fa);
    expect(Buffer.isBuffer(m.body)).toBe(true);
    expect((m.body as Buffer).equals(a)).toBe(true);
  });
});

describe('encoding into caller buffers', () => {
  test('encodeInto writes the same bytes as encode, with or without the prefix, at any offset', () => {
    const msg = Messages.reply(3, { a: [1, 2, 3] }, { checksum: true, attachment: Buffer.from('xyz') });
    const plain = encoder.encode(msg);
    const target = Buffer.alloc(200, 0xee);
    const n = encoder.encodeInto(msg, target, 10, false);
    expect(n).toBe(plain.length);
    expect(target.subarray(10, 10 + n).equals(plain)).toBe(true);
    expect(target[9]).toBe(0xee);
    const m = encoder.encodeInto(msg, target, 100, true);
    expect(m).toBe(plain.length + PREFIX_BYTES);
    expect(target.readUInt32LE(100)).toBe(plain.length);
    expect(target.subarray(104, 100 + m).equals(plain)).toBe(true);
    expect(encoder.encodePrefixed(msg).equals(target.subarray(100, 100 + m))).toBe(true);
  });

  test('encodeInto reports the size needed when the buffer is too small and writes nothing', () => {
    const msg = Messages.reply(1, 'x'.repeat(100));
    const small = Buffer.alloc(50, 0xaa);
    const n = encoder.encodeInto(msg, small, 0, true);
    const size = encoder.encode(msg).length + PREFIX_BYTES;
    expect(n).toBe(-size);
    expect(small.every((b) => b === 0xaa)).toBe(true);
    const big = Buffer.alloc(size);
    expect(encoder.encodeInto(msg, big, 0, true)).toBe(size);
    expect(decoder.decode(big.subarray(PREFIX_BYTES)).body).toBe('x'.repeat(100));
  });

  test('sizeOf matches the encoded length', () => {
    const msg = Messages.push('t', { big: 'y'.repeat(1000) }, { checksum: true });
    expect(encoder.sizeOf(msg)).toBe(encoder.encode(msg).length);
  });

  test('the length rule holds: 28 + action + body + attachment + trailer', () => {
    const frame = encoder.encode(Messages.request(1, 'abc', 'body', { attachment: Buffer.alloc(10), checksum: true }));
    const h = readHeader(frame);
    expect(frame.length).toBe(HEADER_BYTES + 3 + h.bodyWireLength + 10 + CHECKSUM_BYTES);
  });
});

describe('stream framing', () => {
  const frames = [
    encoder.encodePrefixed(Messages.request(1, 'a', 1)),
    Buffer.from([0, 0, 0, 0]), // a zero-length frame
    encoder.encodePrefixed(Messages.request(2, 'b', 'x'.repeat(3000), { checksum: true })),
    encoder.encodePrefixed(Messages.ping(3)),
  ];
  const stream = Buffer.concat(frames);

  test('FrameReader yields the same frames however the stream is cut into chunks', () => {
    for (const chunkSize of [1, 2, 3, 4, 5, 7, 64, 1000, stream.length]) {
      const got: Buffer[] = [];
      const reader = new FrameReader((f) => got.push(Buffer.from(f)));
      for (let i = 0; i < stream.length; i += chunkSize) reader.push(stream.subarray(i, i + chunkSize));
      expect(got.map((f) => f.length)).toEqual(frames.map((f) => f.length - 4));
      expect(got[2]!.equals(frames[2]!.subarray(4))).toBe(true);
      expect(reader.buffered).toBe(0);
    }
  });

  test('FrameReader refuses a prefix above maxFrameBytes with a fatal FRAME_TOO_LARGE', () => {
    const reader = new FrameReader(() => {}, { maxFrameBytes: 100 });
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32LE(101);
    let caught: unknown;
    try {
      reader.push(prefix);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ProtocolError);
    expect((caught as ProtocolError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
    expect((caught as ProtocolError).fatal).toBe(true);
  });

  test('decodePrefixed walks a stream and says INCOMPLETE (not corrupt) at every cut inside a frame', () => {
    let offset = 0;
    const kinds: Array<number | null> = [];
    while (offset < stream.length) {
      const { message, end } = decoder.decodePrefixed(stream, offset);
      kinds.push(message ? message.kind : null);
      offset = end;
    }
    expect(kinds).toEqual([Kind.REQUEST, null, Kind.REQUEST, Kind.PING]);
    const third = frames[0]!.length + 4;
    for (let cut = third; cut < third + frames[2]!.length; cut++) {
      try {
        decoder.decodePrefixed(stream.subarray(0, cut), third);
        expect.unreachable();
      } catch (e) {
        expect((e as ProtocolError).incomplete).toBe(true);
        expect((e as ProtocolError).code).toBe(ErrorCode.INCOMPLETE);
        expect((e as ProtocolError).needed).toBe(cut - third < 4 ? 4 : frames[2]!.length);
      }
    }
  });

  test('sliceFrame returns a view without the prefix', () => {
    const f = sliceFrame(stream, 0);
    expect(f.length).toBe(frames[0]!.length - 4);
    expect(f.buffer).toBe(stream.buffer);
  });
});

describe('bodies MessagePack cannot carry', () => {
  test('are refused with errors that say what the value held, not which msgpackr setting to change', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => packBody(2n ** 70n)).toThrow(/^the body holds a bigint outside the 64-bit range \(-2\^63 to 2\^64-1\), which MessagePack cannot carry$/);
    expect(() => packBody({ nested: [-(2n ** 64n)] })).toThrow(RangeError);
    expect(() => packBody(cycle)).toThrow(/^the body nests too deeply or refers to itself \(a cycle\), which MessagePack cannot carry$/);
    expect(() => packBody(Symbol('s'))).toThrow(/^the body holds a Symbol, which MessagePack cannot carry$/);
    // The edges of the range still pack.
    expect(unpackBody(packBody(2n ** 64n - 1n))).toBe(2n ** 64n - 1n);
    expect(unpackBody(packBody(-(2n ** 63n)))).toBe(-(2n ** 63n));
  });
});
