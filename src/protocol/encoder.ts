// encoder.ts - building messages.  One MessageEncoder per producer (a server
// main thread, a worker, a client): it packs the body with the module's
// reused Packr, compresses when asked and worth it, and writes the header,
// action, body, attachment and CRC straight into the caller's buffer.
//
// Batch use: `encodeInto(msg, target, offset, prefix)` returns the bytes
// written, or when `target` lacks room the NEGATIVE of the bytes needed and
// writes nothing; call again with the same message object and a bigger
// buffer and the packed/compressed body is reused, not rebuilt.

import { deflateRawSync } from 'node:zlib';
import { type EncoderOptions, type ResolvedEncoderOptions, resolveEncoderOptions } from './defaults.js';
import { checksumOf } from './header.js';
import {
  CHECKSUM_BYTES,
  Flag,
  HEADER_BYTES,
  Kind,
  MAGIC,
  MAX_ACTION_BYTES,
  MAX_U32,
  Offset,
  PREFIX_BYTES,
  VERSION,
} from './layout.js';
import { packBody } from './msgpack.js';

/** Which sections to compress: true = body and attachment. */
export type CompressOption = boolean | 'body' | 'attachment';

/** A message to encode. */
export interface OutgoingMessage {
  kind: Kind;
  /** Request id (REQUEST/REPLY/ERROR/PING/PONG); default 0. */
  id?: number;
  /** REQUEST: the action (required); PUSH: an optional topic.  1..255 UTF-8 bytes. */
  action?: string;
  /** ERROR / GOAWAY: an ErrorCode or application code (u16). */
  code?: number;
  /** Any msgpack-able value; `undefined` means "no body" (zero bytes). */
  body?: unknown;
  /** Raw bytes sent beside the body, never msgpack-encoded. */
  attachment?: Uint8Array;
  /** Compress sections with raw DEFLATE (only when at least compressThreshold bytes and smaller after). */
  compress?: CompressOption;
  /** Append a CRC-32 trailer. */
  checksum?: boolean;
}

interface Prepared {
  msg: OutgoingMessage;
  flags: number;
  action: string;
  actionLength: number;
  body: Uint8Array;
  bodyLength: number;
  attach: Uint8Array;
  attachLength: number;
  size: number; // without prefix
}

const EMPTY = new Uint8Array(0);

/** What the action field is called in errors: a PUSH's is its topic. */
function actionField(msg: OutgoingMessage): string {
  return msg.kind === Kind.PUSH ? 'topic' : 'action';
}

/** Encodes protocol messages; see the file comment for the batch contract. */
export class MessageEncoder {
  readonly options: Readonly<ResolvedEncoderOptions>;
  #pending: Prepared | null = null;

  constructor(options: EncoderOptions = {}) {
    this.options = Object.freeze(resolveEncoderOptions(options));
  }

  /** Encodes `msg` into a new Buffer of exactly its size, without the length prefix. */
  encode(msg: OutgoingMessage): Buffer {
    const p = this.#prepare(msg);
    const out = Buffer.allocUnsafe(p.size);
    this.#write(p, out, 0);
    return out;
  }

  /** Encodes `msg` into a new Buffer with the 4-byte length prefix in front, ready for a socket. */
  encodePrefixed(msg: OutgoingMessage): Buffer {
    const p = this.#prepare(msg);
    const out = Buffer.allocUnsafe(PREFIX_BYTES + p.size);
    out.writeUInt32LE(p.size, 0);
    this.#write(p, out, PREFIX_BYTES);
    return out;
  }

  /**
   * Writes `msg` into `target` at `offset` (with the length prefix when
   * `prefix` is true).  Returns the bytes written, or `-needed` when the
   * target is too small (nothing written; retrying with the same `msg`
   * object reuses the encoded body).
   */
  encodeInto(msg: OutgoingMessage, target: Buffer, offset = 0, prefix = false): number {
    const p = this.#pending !== null && this.#pending.msg === msg ? this.#pending : this.#prepare(msg);
    const total = p.size + (prefix ? PREFIX_BYTES : 0);
    if (!Number.isInteger(offset) || offset < 0 || offset > target.length) {
      throw new RangeError(`offset must be an integer between 0 and target.length, got ${offset}`);
    }
    if (target.length - offset < total) {
      this.#pending = p;
      return -total;
    }
    this.#pending = null;
    if (prefix) {
      target.writeUInt32LE(p.size, offset);
      this.#write(p, target, offset + PREFIX_BYTES);
    } else this.#write(p, target, offset);
    return total;
  }

  /** The encoded size of `msg` without prefix (encodes the body; a following encodeInto of the same object reuses it). */
  sizeOf(msg: OutgoingMessage): number {
    const p = this.#prepare(msg);
    this.#pending = p;
    return p.size;
  }

  #prepare(msg: OutgoingMessage): Prepared {
    let flags = msg.checksum ? Flag.CHECKSUM : 0;
    const action = msg.action ?? '';
    if (typeof action !== 'string') throw new TypeError(`${actionField(msg)} must be a string, got ${typeof action}`);
    const actionLength = action.length === 0 ? 0 : Buffer.byteLength(action, 'utf8');
    if (actionLength > MAX_ACTION_BYTES) {
      throw new RangeError(`${actionField(msg)} must be at most ${MAX_ACTION_BYTES} bytes of UTF-8, got ${actionLength}`);
    }
    if (msg.kind === Kind.REQUEST && actionLength === 0) throw new TypeError('a REQUEST needs a non-empty action');
    // packBody returns a view into the Packr's reused buffer; it stays valid
    // until it is copied below because nothing else packs in between.
    let body: Uint8Array = msg.body === undefined ? EMPTY : packBody(msg.body);
    const bodyLength = body.length;
    let attach: Uint8Array = msg.attachment ?? EMPTY;
    if (!(attach instanceof Uint8Array)) throw new TypeError('attachment must be a Buffer or Uint8Array');
    const attachLength = attach.length;
    const compress = msg.compress ?? false;
    if (compress !== false) {
      const { compressThreshold, compressionLevel } = this.options;
      if (compress !== 'attachment' && bodyLength > 0 && bodyLength >= compressThreshold) {
        const z = deflateRawSync(body, { level: compressionLevel });
        if (z.length < bodyLength) {
          body = z;
          flags |= Flag.BODY_DEFLATE;
        }
      }
      if (compress !== 'body' && attachLength > 0 && attachLength >= compressThreshold) {
        const z = deflateRawSync(attach, { level: compressionLevel });
        if (z.length < attachLength) {
          attach = z;
          flags |= Flag.ATTACHMENT_DEFLATE;
        }
      }
    }
    if (bodyLength > MAX_U32 || attachLength > MAX_U32) throw new RangeError('body and attachment must each be below 4 GiB');
    const size = HEADER_BYTES + actionLength + body.length + attach.length + (msg.checksum ? CHECKSUM_BYTES : 0);
    return { msg, flags, action, actionLength, body, bodyLength, attach, attachLength, size };
  }

  #write(p: Prepared, out: Buffer, at: number): void {
    const { msg } = p;
    out[at + Offset.MAGIC] = MAGIC;
    out[at + Offset.VERSION] = VERSION;
    out[at + Offset.KIND] = msg.kind;
    out[at + Offset.FLAGS] = p.flags;
    putU32(out, at + Offset.ID, (msg.id ?? 0) >>> 0);
    const code = (msg.code ?? 0) & 0xffff;
    out[at + Offset.CODE] = code & 0xff;
    out[at + Offset.CODE + 1] = code >>> 8;
    out[at + Offset.ACTION_LENGTH] = p.actionLength;
    out[at + Offset.RESERVED] = 0;
    putU32(out, at + Offset.BODY_WIRE_LENGTH, p.body.length);
    putU32(out, at + Offset.BODY_LENGTH, p.bodyLength);
    putU32(out, at + Offset.ATTACH_WIRE_LENGTH, p.attach.length);
    putU32(out, at + Offset.ATTACH_LENGTH, p.attachLength);
    let pos = at + HEADER_BYTES;
    if (p.actionLength > 0) {
      const action = p.action;
      if (action.length === p.actionLength) {
        // ASCII (one byte per UTF-16 unit): a plain loop beats Buffer#write for short names.
        for (let i = 0; i < action.length; i++) out[pos + i] = action.charCodeAt(i);
        pos += action.length;
      } else pos += out.write(action, pos, p.actionLength, 'utf8');
    }
    pos = copyInto(out, pos, p.body);
    pos = copyInto(out, pos, p.attach);
    if (msg.checksum) putU32(out, pos, checksumOf(out.subarray(at), pos - at));
  }
}

function putU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value & 0xff;
  out[at + 1] = (value >>> 8) & 0xff;
  out[at + 2] = (value >>> 16) & 0xff;
  out[at + 3] = value >>> 24;
}

/** Copies `src` to `out[pos]`; small sections by hand (TypedArray#set has a fixed cost). */
function copyInto(out: Uint8Array, pos: number, src: Uint8Array): number {
  const n = src.length;
  if (n < 64) for (let i = 0; i < n; i++) out[pos + i] = src[i] as number;
  else out.set(src, pos);
  return pos + n;
}

// ---------------------------------------------------------------------------
// Message builders: plain objects for MessageEncoder, one per kind.
// ---------------------------------------------------------------------------

/** Per-message options shared by the builders. */
export interface SendOptions {
  attachment?: Uint8Array;
  compress?: CompressOption;
  checksum?: boolean;
}

/** The msgpack body of ERROR and GOAWAY messages. */
export interface ErrorBody {
  message: string;
  data?: unknown;
}

/** Builders for every kind of message. */
export const Messages = Object.freeze({
  request(id: number, action: string, body?: unknown, opts: SendOptions = {}): OutgoingMessage {
    return { kind: Kind.REQUEST, id, action, body, ...opts };
  },
  reply(id: number, body?: unknown, opts: SendOptions = {}): OutgoingMessage {
    return { kind: Kind.REPLY, id, body, ...opts };
  },
  /** An ERROR answering request `id` (0 when it concerns no request). */
  error(id: number, code: number, message: string, data?: unknown, opts: Omit<SendOptions, 'attachment'> = {}): OutgoingMessage {
    const body: ErrorBody = data === undefined ? { message } : { message, data };
    return { kind: Kind.ERROR, id, code, body, ...opts };
  },
  /** A PUSH, with an optional topic carried in the action field. */
  push(topic: string | undefined, body?: unknown, opts: SendOptions = {}): OutgoingMessage {
    return { kind: Kind.PUSH, id: 0, action: topic, body, ...opts };
  },
  ping(id: number, opts: Pick<SendOptions, 'checksum'> = {}): OutgoingMessage {
    return { kind: Kind.PING, id, ...opts };
  },
  pong(id: number, opts: Pick<SendOptions, 'checksum'> = {}): OutgoingMessage {
    return { kind: Kind.PONG, id, ...opts };
  },
  /** A GOAWAY: the sender closes the connection after it; code 0 = normal close. */
  goAway(code: number, message: string, data?: unknown, opts: Pick<SendOptions, 'checksum'> = {}): OutgoingMessage {
    const body: ErrorBody = data === undefined ? { message } : { message, data };
    return { kind: Kind.GOAWAY, id: 0, code, body, ...opts };
  },
});
