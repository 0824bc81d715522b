import { deflateRawSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import {
  ErrorCode,
  Flag,
  Kind,
  MessageDecoder,
  MessageEncoder,
  Messages,
  Offset,
  ProtocolError,
  ServerCodec,
  answerDecodeError,
  assertFromServer,
  checksumOf,
} from '../src/protocol/index.js';

const encoder = new MessageEncoder();
const decoder = new MessageDecoder();

/** Decodes and returns the ProtocolError it must throw. */
function failure(frame: Uint8Array, d: MessageDecoder = decoder): ProtocolError {
  try {
    d.decode(frame);
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return e as ProtocolError;
  }
  throw new Error('decode succeeded on malformed input');
}

/** A request frame whose header/body the test then damages. */
function request(opts: { checksum?: boolean; body?: unknown; attachment?: Buffer } = {}): Buffer {
  return encoder.encode(Messages.request(7, 'echo', 'body' in opts ? opts.body : { a: 1 }, { checksum: opts.checksum, attachment: opts.attachment }));
}

/** A frame with a hand-made body (raw msgpack bytes), optionally checksummed. */
function withRawBody(kind: number, id: number, action: string, body: Buffer): Buffer {
  const a = Buffer.from(action);
  const f = Buffer.alloc(28 + a.length + body.length);
  f[0] = 0x57; f[1] = 1; f[2] = kind;
  f.writeUInt32LE(id, Offset.ID);
  f[Offset.ACTION_LENGTH] = a.length;
  f.writeUInt32LE(body.length, Offset.BODY_WIRE_LENGTH);
  f.writeUInt32LE(body.length, Offset.BODY_LENGTH);
  a.copy(f, 28);
  body.copy(f, 28 + a.length);
  return f;
}

function fixChecksum(frame: Buffer): Buffer {
  frame.writeUInt32LE(checksumOf(frame, frame.length - 4), frame.length - 4);
  return frame;
}

describe('header sanity', () => {
  test('an empty frame is BAD_MESSAGE', () => {
    expect(failure(Buffer.alloc(0)).code).toBe(ErrorCode.BAD_MESSAGE);
  });

  test('a frame shorter than the header is corrupt (BAD_MESSAGE), not incomplete, and keeps the request id', () => {
    const e = failure(request().subarray(0, 12));
    expect(e.code).toBe(ErrorCode.BAD_MESSAGE);
    expect(e.incomplete).toBe(false);
    expect(e.requestId).toBe(7);
    expect(e.message).toMatch(/shorter than the 28-byte header/);
  });

  test('a wrong magic byte is a fatal BAD_MAGIC answered by GOAWAY and close', () => {
    const f = request();
    f[0] = 0x48;
    const e = failure(f);
    expect(e.code).toBe(ErrorCode.BAD_MAGIC);
    expect(e.fatal).toBe(true);
    const { answer, close } = answerDecodeError(e);
    expect(close).toBe(true);
    expect(answer).toMatchObject({ kind: Kind.GOAWAY, code: ErrorCode.BAD_MAGIC });
  });

  test('an unknown version is fatal and the GOAWAY names the supported versions', () => {
    const f = request();
    f[1] = 2;
    const e = failure(f);
    expect(e.code).toBe(ErrorCode.UNKNOWN_VERSION);
    expect(e.message).toMatch(/version 2/);
    const { answer, close } = answerDecodeError(e);
    expect(close).toBe(true);
    const goaway = decoder.decode(encoder.encode(answer!));
    expect(goaway.kind).toBe(Kind.GOAWAY);
    expect(goaway.code).toBe(ErrorCode.UNKNOWN_VERSION);
    expect(goaway.body).toMatchObject({ data: { supportedVersions: [1] } });
  });

  test.each([0, 8, 255])('kind %i is UNKNOWN_KIND', (kind) => {
    const f = request();
    f[2] = kind;
    expect(failure(f).code).toBe(ErrorCode.UNKNOWN_KIND);
  });

  test('unknown flag bits are BAD_MESSAGE', () => {
    const f = request();
    f[3] = 0x08;
    expect(failure(f).message).toMatch(/unknown flag bits 0x8/);
  });

  test('a non-zero reserved byte is BAD_MESSAGE', () => {
    const f = request();
    f[Offset.RESERVED] = 1;
    expect(failure(f).message).toMatch(/reserved/);
  });

  test('lengths that disagree with the frame length are BAD_MESSAGE with the request id', () => {
    const f = request();
    f.writeUInt32LE(f.readUInt32LE(Offset.BODY_WIRE_LENGTH) + 1, Offset.BODY_WIRE_LENGTH);
    const e = failure(f);
    expect(e.code).toBe(ErrorCode.BAD_MESSAGE);
    expect(e.message).toMatch(/lengths disagree/);
    expect(answerDecodeError(e).answer).toMatchObject({ kind: Kind.ERROR, id: 7, code: ErrorCode.BAD_MESSAGE });
    expect(failure(Buffer.concat([request(), Buffer.from([0])])).message).toMatch(/lengths disagree/);
  });

  test('huge declared lengths are refused without allocating (sums are exact)', () => {
    const f = request();
    f.writeUInt32LE(0xffffffff, Offset.BODY_WIRE_LENGTH);
    f.writeUInt32LE(0xffffffff, Offset.ATTACH_WIRE_LENGTH);
    expect(failure(f).message).toMatch(/lengths disagree/);
  });

  test('an uncompressed section whose two lengths differ is BAD_MESSAGE', () => {
    const f = request();
    f.writeUInt32LE(999, Offset.BODY_LENGTH);
    expect(failure(f).message).toMatch(/uncompressed body/);
  });

  test('a compressed flag on an empty section is BAD_MESSAGE', () => {
    const f = encoder.encode(Messages.reply(1));
    f[3] = Flag.ATTACHMENT_DEFLATE;
    expect(failure(f).message).toMatch(/compressed attachment must have non-zero lengths/);
  });

  const kindRules: Array<[string, () => Buffer, RegExp]> = [
    ['REQUEST with id 0', () => { const f = request(); f.writeUInt32LE(0, Offset.ID); return f; }, /non-zero id/],
    ['REQUEST without action', () => withRawBody(Kind.REQUEST, 1, '', Buffer.from([0xc0])), /must name an action/],
    ['REPLY with an action', () => withRawBody(Kind.REPLY, 1, 'x', Buffer.from([0xc0])), /must not carry an action/],
    ['REPLY with id 0', () => withRawBody(Kind.REPLY, 0, '', Buffer.from([0xc0])), /non-zero id/],
    ['PUSH with an id', () => withRawBody(Kind.PUSH, 4, '', Buffer.from([0xc0])), /must have id 0/],
    ['ERROR with code 0', () => withRawBody(Kind.ERROR, 1, '', Buffer.from([0xc0])), /non-zero code/],
    ['REPLY with a code', () => { const f = encoder.encode(Messages.reply(1, 1)); f.writeUInt16LE(5, Offset.CODE); return f; }, /must have code 0/],
    ['PING with a body', () => withRawBody(Kind.PING, 1, '', Buffer.from([0xc0])), /no body and no attachment/],
  ];
  test.each(kindRules)('%s is BAD_MESSAGE', (_name, make, message) => {
    const e = failure(make());
    expect(e.code).toBe(ErrorCode.BAD_MESSAGE);
    expect(e.message).toMatch(message);
  });

  test('an action that is not UTF-8 is BAD_MESSAGE', () => {
    const f = withRawBody(Kind.REQUEST, 1, 'ab', Buffer.from([0xc0]));
    f[28] = 0xff;
    expect(failure(f).message).toMatch(/not valid UTF-8/);
  });
});

describe('checksums', () => {
  test('a flipped bit anywhere in a checksummed message is BAD_CHECKSUM, answered with the request id', () => {
    const good = request({ checksum: true, attachment: Buffer.from('payload') });
    // Bytes outside the length fields, so the length rule still holds.
    for (const at of [3, 4, 8, 30, good.length - 10, good.length - 1]) {
      const f = Buffer.from(good);
      f[at]! ^= 0x10;
      const e = failure(f);
      if (at === 3) {
        expect(e.code).toBe(ErrorCode.BAD_MESSAGE); // flags byte: unknown bit
        continue;
      }
      expect(e.code).toBe(ErrorCode.BAD_CHECKSUM);
      const { answer, close } = answerDecodeError(e);
      expect(close).toBe(false);
      expect(answer).toMatchObject({ kind: Kind.ERROR, code: ErrorCode.BAD_CHECKSUM, id: at === 4 ? 7 ^ 0x10 : 7 });
    }
  });

  test('a receiver that requires checksums refuses messages without one', () => {
    const strict = new MessageDecoder({ requireChecksum: true });
    expect(failure(request(), strict).code).toBe(ErrorCode.CHECKSUM_REQUIRED);
    expect(strict.decode(request({ checksum: true })).body).toEqual({ a: 1 });
  });
});

describe('bad msgpack bodies', () => {
  const bodies: Array<[string, number[], RegExp]> = [
    ['the never-used byte 0xc1', [0xc1], /0xc1/],
    ['a truncated array', [0x93, 0x01, 0x02], /container .* declares 3 items|ends early/],
    ['a truncated string', [0xa5, 0x61, 0x62], /ends early/],
    ['a truncated str32 length', [0xdb, 0x00, 0x00], /ends early/],
    ['trailing bytes after the value', [0x01, 0x02], /value ends at byte 1/],
    ['a msgpackr Error extension (0x65)', [0xd4, 0x65, 0x00], /extension format 0xd4/],
    ['a msgpackr record definition (0x72)', [0xd4, 0x72, 0x40], /extension format 0xd4/],
    ['an ext 8 of a non-timestamp type', [0xc7, 0x01, 0x73, 0x00], /extension type 115/],
    ['a timestamp of a bad size', [0xc7, 0x03, 0xff, 0, 0, 0], /timestamp of 3 bytes/],
    ['a map32 claiming 2^32-1 entries', [0xdf, 0xff, 0xff, 0xff, 0xff, 0x01], /declares 8589934590 items/],
  ];
  test.each(bodies)('%s is BAD_MESSAGE', (_name, body, message) => {
    const e = failure(withRawBody(Kind.REQUEST, 3, 'x', Buffer.from(body)));
    expect(e.code).toBe(ErrorCode.BAD_MESSAGE);
    expect(e.requestId).toBe(3);
    expect(e.message).toMatch(message);
  });

  test('the standard timestamp extension is accepted', () => {
    const m = decoder.decode(withRawBody(Kind.REQUEST, 3, 'x', Buffer.from([0xd6, 0xff, 0, 0, 0, 10])));
    expect(m.body).toEqual(new Date(10_000));
  });

  test('nesting deeper than maxDepth is BAD_MESSAGE, not a stack overflow', () => {
    const deep = Buffer.alloc(100_000, 0x91);
    deep[deep.length - 1] = 0x01;
    expect(failure(withRawBody(Kind.REQUEST, 3, 'x', deep)).message).toMatch(/deeper than maxDepth 64/);
    const shallow = Buffer.from([0x91, 0x91, 0x01]);
    expect(new MessageDecoder({ maxDepth: 2 }).decode(withRawBody(Kind.REQUEST, 3, 'x', shallow)).body).toEqual([[1]]);
  });
});

describe('limits and compression bombs', () => {
  test('a body above maxBodyBytes is BODY_TOO_LARGE, answered with an ERROR that keeps the connection', () => {
    const d = new MessageDecoder({ maxBodyBytes: 10 });
    const e = failure(request({ body: 'x'.repeat(20) }), d);
    expect(e.code).toBe(ErrorCode.BODY_TOO_LARGE);
    expect(e.message).toMatch(/exceeds maxBodyBytes 10/);
    expect(answerDecodeError(e)).toMatchObject({ close: false, answer: { kind: Kind.ERROR, id: 7 } });
  });

  test('an attachment above maxAttachmentBytes is ATTACHMENT_TOO_LARGE', () => {
    const d = new MessageDecoder({ maxAttachmentBytes: 3 });
    expect(failure(request({ attachment: Buffer.alloc(4) }), d).code).toBe(ErrorCode.ATTACHMENT_TOO_LARGE);
  });

  test('compressed sections declaring more than maxDecompressedBytes are refused before inflating', () => {
    const d = new MessageDecoder({ maxDecompressedBytes: 1000 });
    const f = encoder.encode(Messages.reply(1, undefined, { attachment: Buffer.alloc(5000), compress: true }));
    expect(failure(f, d).code).toBe(ErrorCode.DECOMPRESSED_TOO_LARGE);
  });

  test('a DEFLATE bomb that inflates beyond its declared length stops at the declared length', () => {
    const bomb = deflateRawSync(Buffer.alloc(64 * 1024 * 1024));
    const f = Buffer.alloc(28 + bomb.length);
    f[0] = 0x57; f[1] = 1; f[2] = Kind.REPLY; f[3] = Flag.ATTACHMENT_DEFLATE;
    f.writeUInt32LE(1, Offset.ID);
    f.writeUInt32LE(bomb.length, Offset.ATTACH_WIRE_LENGTH);
    f.writeUInt32LE(1000, Offset.ATTACH_LENGTH); // a lie
    bomb.copy(f, 28);
    const before = process.memoryUsage().arrayBuffers;
    const e = failure(f);
    const grew = process.memoryUsage().arrayBuffers - before;
    expect(e.code).toBe(ErrorCode.BAD_MESSAGE);
    expect(e.message).toMatch(/more than its declared 1000 bytes/);
    expect(grew).toBeLessThan(16 * 1024 * 1024);
    // The honest declaration is refused by the limit before inflating.
    f.writeUInt32LE(64 * 1024 * 1024, Offset.ATTACH_LENGTH);
    expect(failure(f).code).toBe(ErrorCode.ATTACHMENT_TOO_LARGE);
  });

  test('DEFLATE data that is invalid or shorter than declared is BAD_MESSAGE', () => {
    const good = encoder.encode(Messages.reply(1, 'z'.repeat(2000), { compress: true }));
    expect(good[3]! & Flag.BODY_DEFLATE).toBe(Flag.BODY_DEFLATE);
    const short = Buffer.from(good);
    short.writeUInt32LE(2000 + 3 + 10, Offset.BODY_LENGTH); // more than it inflates to
    expect(failure(short).message).toMatch(/decompresses to \d+ bytes, header declares/);
    const garbage = Buffer.from(good);
    garbage.fill(0xff, 28, 28 + 4);
    expect(failure(garbage).message).toMatch(/invalid DEFLATE data/);
  });
});

describe('direction and answers', () => {
  test('a server refuses kinds a client never sends (UNEXPECTED_KIND) and a client refuses REQUESTs', () => {
    const codec = new ServerCodec();
    let err: unknown;
    try { codec.decode(encoder.encode(Messages.reply(1, 1))); } catch (e) { err = e; }
    expect((err as ProtocolError).code).toBe(ErrorCode.UNEXPECTED_KIND);
    expect(() => assertFromServer(decoder.decode(request()))).toThrow(/client does not accept REQUEST/);
  });

  test('problems with ERROR, PONG and GOAWAY messages are not answered; unknown throwables become INTERNAL', () => {
    const f = fixChecksum(encoder.encode(Messages.pong(1, { checksum: true })));
    f[8]! ^= 1;
    f.writeUInt32LE(0, f.length - 4); // damage the trailer
    expect(answerDecodeError(failure(f)).answer).toBeNull();
    expect(answerDecodeError(new Error('boom')).answer).toMatchObject({ code: ErrorCode.INTERNAL });
  });

  test('decoder options are validated with messages naming the option', () => {
    expect(() => new MessageDecoder({ maxBodyBytes: -1 })).toThrow('options.maxBodyBytes must be an integer between 0 and 4294967295, got -1');
    expect(() => new MessageDecoder({ requireChecksum: 'yes' as never })).toThrow('options.requireChecksum must be a boolean, got "yes"');
    expect(() => new MessageEncoder({ compressionLevel: 10 })).toThrow(/options.compressionLevel/);
  });
});
