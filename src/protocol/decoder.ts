// decoder.ts - turning one whole frame into a message.  Checks run in the
// order that spends the least on a bad message:
//
//   1. header sanity (readHeader): magic, version, kind, flags, lengths,
//      then the checksum over the wire bytes, then the per-kind rules
//   2. checksum presence when required
//   3. limits on the DECLARED sizes (before any allocation)
//   4. action name (strict UTF-8)
//   5. decompression, bounded by the declared size (zlib maxOutputLength)
//   6. strict msgpack scan, then msgpackr straight from the frame slice
//
// Every failure is a ProtocolError with a code; nothing untyped escapes.
// A frame handed to decode() is whole by contract, so a short frame is
// corrupt (BAD_MESSAGE), never "incomplete"; decodePrefixed() is the entry
// point for bytes straight off a stream, where INCOMPLETE means "wait".

import { inflateRawSync } from 'node:zlib';
import { type DecoderOptions, type ResolvedDecoderOptions, resolveDecoderOptions } from './defaults.js';
import { ErrorCode, ProtocolError } from './errors.js';
import { type FrameHeader, errorContext, readHeader } from './header.js';
import { Flag, HEADER_BYTES, type Kind, kindName } from './layout.js';
import { scanMsgpack, unpackBody } from './msgpack.js';
import { sliceFrame } from './stream.js';

/** A decoded message. */
export interface DecodedMessage {
  kind: Kind;
  id: number;
  /** ERROR / GOAWAY code; 0 otherwise. */
  code: number;
  /** REQUEST action or PUSH topic; '' when none. */
  action: string;
  /** The decoded msgpack body; `undefined` when the message has none. */
  body: unknown;
  /** The attachment; empty when none.  A view into the frame unless copyBuffers (or it was compressed). */
  attachment: Buffer;
  /** Header flags as received. */
  flags: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const EMPTY: Buffer = Buffer.alloc(0);

function asBuffer(frame: Uint8Array): Buffer {
  return Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
}

/** Decodes whole frames under one set of validated limits. */
export class MessageDecoder {
  readonly options: Readonly<ResolvedDecoderOptions>;

  constructor(options: DecoderOptions = {}) {
    this.options = Object.freeze(resolveDecoderOptions(options));
  }

  /**
   * Decodes the message that fills `frame` exactly (no length prefix).
   * Throws {@link ProtocolError} for every kind of bad input.
   */
  decode(frame: Uint8Array): DecodedMessage {
    const buf = asBuffer(frame);
    const h = readHeader(buf);
    this.check(h);
    return this.decodeChecked(buf, h);
  }

  /**
   * Decodes the prefixed frame at `buf[offset]` and returns it with the
   * offset just past it.  Throws ProtocolError INCOMPLETE (`incomplete:
   * true`) when `buf` does not yet hold the whole frame, FRAME_TOO_LARGE
   * (fatal) for a prefix above `maxFrameBytes`, and the errors of decode().
   * A zero-length frame decodes to `message: null`.
   */
  decodePrefixed(buf: Buffer, offset = 0, maxFrameBytes?: number): { message: DecodedMessage | null; end: number } {
    const frame = sliceFrame(buf, offset, maxFrameBytes);
    const end = offset + 4 + frame.length;
    return { message: frame.length === 0 ? null : this.decode(frame), end };
  }

  /**
   * Steps 2-3 for a header already read: checksum presence, then the size
   * limits.  Exposed so a router can reject early without decoding.
   */
  check(h: FrameHeader): void {
    const o = this.options;
    // readHeader has verified the CRC when one is present.
    if (!h.checksum && o.requireChecksum) {
      throw new ProtocolError(ErrorCode.CHECKSUM_REQUIRED, `${kindName(h.kind)} ${h.id}: this peer requires a CRC-32 trailer (flag CHECKSUM)`, errorContext(h.kind, h.id));
    }
    if (h.bodyLength > o.maxBodyBytes) {
      throw new ProtocolError(ErrorCode.BODY_TOO_LARGE, `body of ${h.bodyLength} bytes exceeds maxBodyBytes ${o.maxBodyBytes}`, errorContext(h.kind, h.id));
    }
    if (h.attachLength > o.maxAttachmentBytes) {
      throw new ProtocolError(
        ErrorCode.ATTACHMENT_TOO_LARGE,
        `attachment of ${h.attachLength} bytes exceeds maxAttachmentBytes ${o.maxAttachmentBytes}`,
        errorContext(h.kind, h.id),
      );
    }
    const inflated = (h.flags & Flag.BODY_DEFLATE ? h.bodyLength : 0) + (h.flags & Flag.ATTACHMENT_DEFLATE ? h.attachLength : 0);
    if (inflated > o.maxDecompressedBytes) {
      throw new ProtocolError(
        ErrorCode.DECOMPRESSED_TOO_LARGE,
        `message would decompress to ${inflated} bytes, above maxDecompressedBytes ${o.maxDecompressedBytes}`,
        errorContext(h.kind, h.id),
      );
    }
  }

  /** Steps 4-6 for a frame that passed readHeader and check. */
  decodeChecked(buf: Buffer, h: FrameHeader): DecodedMessage {
    const action = h.actionLength > 0 ? readAction(buf, h) : '';
    let body: unknown;
    if (h.bodyLength > 0) {
      let src = buf;
      let start = h.bodyOffset;
      let end = h.attachOffset;
      let copy = this.options.copyBuffers;
      if (h.flags & Flag.BODY_DEFLATE) {
        src = inflate(buf.subarray(start, end), h.bodyLength, 'body', h);
        start = 0;
        end = src.length;
        copy = false; // src is a fresh buffer nobody else holds
      }
      const bad = scanMsgpack(src, start, end, this.options.maxDepth);
      if (bad !== null) throw new ProtocolError(ErrorCode.BAD_MESSAGE, `body: ${bad}`, errorContext(h.kind, h.id));
      try {
        body = unpackBody(src, start, end, copy);
      } catch (cause) {
        // The scan admits only well-formed input, so this is msgpackr refusing
        // something valid-but-unsupported (e.g. a huge string); still corrupt
        // for us, never incomplete: the frame is whole.
        throw new ProtocolError(ErrorCode.BAD_MESSAGE, `body: msgpack decoding failed: ${(cause as Error)?.message ?? cause}`, { ...errorContext(h.kind, h.id), cause });
      }
    }
    let attachment: Buffer = EMPTY;
    if (h.attachLength > 0) {
      const wire = buf.subarray(h.attachOffset, h.attachOffset + h.attachWireLength);
      if (h.flags & Flag.ATTACHMENT_DEFLATE) attachment = inflate(wire, h.attachLength, 'attachment', h);
      else attachment = this.options.copyBuffers ? Buffer.from(wire) : wire;
    }
    return { kind: h.kind, id: h.id, code: h.code, action, body, attachment, flags: h.flags };
  }
}

// Action names are few and repeat on every request, so decoded names are
// cached by a hash of their bytes (msgpackr does the same for map keys): a
// hit costs one hash and one byte comparison instead of a UTF-8 decode.
const ACTION_CACHE_SIZE = 1024; // power of two
const actionCache: Array<{ bytes: Uint8Array; text: string } | undefined> = new Array(ACTION_CACHE_SIZE);

function readAction(buf: Buffer, h: FrameHeader): string {
  const start = HEADER_BYTES;
  const end = h.bodyOffset;
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ (buf[i] as number), 0x01000193);
  const slot = (hash >>> 0) & (ACTION_CACHE_SIZE - 1);
  const entry = actionCache[slot];
  if (entry !== undefined && entry.bytes.length === end - start) {
    const bytes = entry.bytes;
    let i = 0;
    while (i < bytes.length && bytes[i] === buf[start + i]) i++;
    if (i === bytes.length) return entry.text;
  }
  let text: string;
  try {
    text = utf8.decode(buf.subarray(start, end));
  } catch (cause) {
    throw new ProtocolError(ErrorCode.BAD_MESSAGE, 'action name is not valid UTF-8', { ...errorContext(h.kind, h.id), cause });
  }
  actionCache[slot] = { bytes: Uint8Array.prototype.slice.call(buf, start, end), text };
  return text;
}

function inflate(wire: Buffer, declared: number, what: string, h: FrameHeader): Buffer {
  let out: Buffer;
  try {
    // maxOutputLength bounds the allocation by the declared (already limited)
    // size: a bomb stops with ERR_BUFFER_TOO_LARGE after `declared` bytes.
    out = inflateRawSync(wire, { maxOutputLength: declared });
  } catch (cause) {
    const e = cause as NodeJS.ErrnoException;
    if (e?.code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ProtocolError(ErrorCode.BAD_MESSAGE, `${what} decompresses to more than its declared ${declared} bytes`, { ...errorContext(h.kind, h.id), cause });
    }
    throw new ProtocolError(ErrorCode.BAD_MESSAGE, `${what}: invalid DEFLATE data (${e?.message ?? cause})`, { ...errorContext(h.kind, h.id), cause });
  }
  if (out.length !== declared) {
    throw new ProtocolError(ErrorCode.BAD_MESSAGE, `${what} decompresses to ${out.length} bytes, header declares ${declared}`, errorContext(h.kind, h.id));
  }
  return out;
}
