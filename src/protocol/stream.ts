// stream.ts - the transport framing for code that reads a byte stream itself
// (the TypeScript client, test servers on node:net).  The native server does
// this in C++; the rule is the same: a 4-byte little-endian length L, then L
// bytes.  Zero-length frames are valid and carry no message.

import { DEFAULT_MAX_FRAME_BYTES, checkInteger } from './defaults.js';
import { ErrorCode, ProtocolError } from './errors.js';
import { PREFIX_BYTES } from './layout.js';

/** Writes the length prefix for a `length`-byte frame into `target` at `offset`; returns 4. */
export function writeFramePrefix(target: Buffer, offset: number, length: number): number {
  target.writeUInt32LE(length, offset);
  return PREFIX_BYTES;
}

/**
 * Finds the frame that starts (with its prefix) at `buf[offset]`.  Returns
 * the frame's bytes as a view (no prefix).  Throws ProtocolError INCOMPLETE
 * (`incomplete: true`, `needed` = bytes required from `offset`) when `buf`
 * ends first, and FRAME_TOO_LARGE (fatal) when the prefix exceeds
 * `maxFrameBytes`.
 */
export function sliceFrame(buf: Buffer, offset = 0, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const have = buf.length - offset;
  if (have < PREFIX_BYTES) {
    throw new ProtocolError(ErrorCode.INCOMPLETE, `need ${PREFIX_BYTES} bytes of length prefix, have ${have}`, { needed: PREFIX_BYTES });
  }
  const length = buf.readUInt32LE(offset);
  if (length > maxFrameBytes) {
    throw new ProtocolError(ErrorCode.FRAME_TOO_LARGE, `frame of ${length} bytes exceeds maxFrameBytes ${maxFrameBytes}`);
  }
  if (have < PREFIX_BYTES + length) {
    throw new ProtocolError(ErrorCode.INCOMPLETE, `frame needs ${PREFIX_BYTES + length} bytes, have ${have}`, {
      needed: PREFIX_BYTES + length,
    });
  }
  return buf.subarray(offset + PREFIX_BYTES, offset + PREFIX_BYTES + length);
}

/**
 * Splits a byte stream into frames.  Feed it chunks with `push`; it calls
 * `onFrame` once per whole frame, in order.  A frame that lies inside one
 * chunk is passed as a view of that chunk (no copy); a frame spread over
 * chunks is gathered into one buffer of exactly its size, allocated once its
 * prefix (bounded by maxFrameBytes) is known.  Each frame buffer is the
 * caller's to keep.  A prefix above maxFrameBytes throws FRAME_TOO_LARGE and
 * the reader must not be used again.
 */
export class FrameReader {
  readonly maxFrameBytes: number;
  readonly #onFrame: (frame: Buffer) => void;
  #prefix = Buffer.alloc(PREFIX_BYTES);
  #prefixHave = 0;
  #frame: Buffer | null = null; // frame being gathered
  #frameHave = 0;
  #broken = false;

  constructor(onFrame: (frame: Buffer) => void, options: { maxFrameBytes?: number } = {}) {
    this.maxFrameBytes = checkInteger('options', 'maxFrameBytes', options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, 0, 0xffff_ffff);
    this.#onFrame = onFrame;
  }

  /** Bytes held for a frame not yet complete. */
  get buffered(): number {
    return this.#prefixHave + this.#frameHave;
  }

  /** Feeds one chunk. */
  push(chunk: Buffer): void {
    if (this.#broken) throw new ProtocolError(ErrorCode.FRAME_TOO_LARGE, 'FrameReader used after a framing error');
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.#frame !== null) {
        const take = Math.min(n - pos, this.#frame.length - this.#frameHave);
        chunk.copy(this.#frame, this.#frameHave, pos, pos + take);
        this.#frameHave += take;
        pos += take;
        if (this.#frameHave === this.#frame.length) {
          const frame = this.#frame;
          this.#frame = null;
          this.#frameHave = 0;
          this.#onFrame(frame);
        }
        continue;
      }
      let length: number;
      if (this.#prefixHave === 0 && n - pos >= PREFIX_BYTES) {
        length = chunk.readUInt32LE(pos);
        pos += PREFIX_BYTES;
      } else {
        const take = Math.min(n - pos, PREFIX_BYTES - this.#prefixHave);
        chunk.copy(this.#prefix, this.#prefixHave, pos, pos + take);
        this.#prefixHave += take;
        pos += take;
        if (this.#prefixHave < PREFIX_BYTES) return;
        this.#prefixHave = 0;
        length = this.#prefix.readUInt32LE(0);
      }
      if (length > this.maxFrameBytes) {
        this.#broken = true;
        throw new ProtocolError(ErrorCode.FRAME_TOO_LARGE, `frame of ${length} bytes exceeds maxFrameBytes ${this.maxFrameBytes}`);
      }
      if (n - pos >= length) {
        const frame = chunk.subarray(pos, pos + length);
        pos += length;
        this.#onFrame(frame);
      } else {
        this.#frame = Buffer.allocUnsafe(length);
        this.#frameHave = 0;
      }
    }
  }
}
