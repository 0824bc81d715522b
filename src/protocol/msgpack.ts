// msgpack.ts - the body codec: plain MessagePack on the wire, msgpackr used
// the fast way (one module-scope Packr that reuses its buffer, Unpackrs that
// decode straight from the frame slice), and a strict scanner that admits only
// standard MessagePack before msgpackr sees the bytes.
//
// Why a scanner: msgpackr's decoder also understands its own extensions
// (records 0x72, Error 0x65, RegExp 0x78, Set 0x73, typed arrays 0x74,
// bundled strings 0x62, ...), and they are registered module-wide, so an
// Unpackr option cannot switch them off.  The protocol promises a stranger
// that bodies are standard MessagePack, so the receiver enforces exactly
// that: every format byte of the spec except 0xc1, and no extension type
// except -1 (timestamp, 4/8/12 bytes).  The scan is one tight loop over the
// format bytes (strings and bins are skipped, not read) and also bounds the
// nesting depth, so a deep body cannot exhaust the stack inside msgpackr.

import { Packr, Unpackr } from 'msgpackr';

// Encoding: no records, no msgpackr-only types, undefined as nil, invalid
// dates as nil, never float32.  Sets/typed arrays become arrays/bins.
const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  encodeUndefinedAsNil: true,
  useFloat32: 0,
  onInvalidDate: () => null,
});

// The typings lack 'auto' although the runtime supports it (unpack.js).
const unpackOptions: ConstructorParameters<typeof Unpackr>[0] & Record<string, unknown> = {
  useRecords: false,
  mapsAsObjects: true,
  structuredClone: false,
  moreTypes: false,
  // 64-bit integers become numbers when exactly representable, else BigInt.
  int64AsType: 'auto' as never,
};
const unpackrCopy = new Unpackr({ ...unpackOptions, copyBuffers: true });
const unpackrView = new Unpackr({ ...unpackOptions, copyBuffers: false });

/**
 * Packs a value as standard MessagePack.  The result is a view into the
 * packer's reused buffer: copy it (the encoder does) before the next call
 * could be made from another context.
 */
export function packBody(value: unknown): Buffer {
  // A byte array (Buffer or Uint8Array, the body of every binary message and
  // of any echo) is one msgpack bin: written here, the same bytes msgpackr
  // writes for it.  msgpackr reaches its bin case only after testing the
  // value with instanceof against each of its extension classes (Date, Set,
  // Error, RegExp, ArrayBuffer, TypedArray).  This and the bin case of
  // unpackBody halved the node:net twin's codec time per echo request in
  // bench/turn-cost.mjs (2.3 to 1.2 us).  Any other view (Float32Array,
  // DataView, ...) is a bin of its bytes too: msgpackr 2.1.3 writes such a
  // typed array's elements truncated to bytes after a header that counts its
  // bytes, so the rest of the bin is whatever its buffer last held, and a
  // DataView as an empty bin.  Nested in arrays, plain objects, Maps and
  // Sets such views are found first and packed as Uint8Array views of the
  // same bytes (holdsWideView; docs/protocol.md, "Body"); inside instances
  // of other classes they are not looked for.
  if (ArrayBuffer.isView(value)) return packBin(byteView(value));
  try {
    if (typeof value === 'object' && value !== null) {
      walkBudget = WALK_BUDGET;
      if (holdsWideView(value, WALK_DEPTH)) return packr.pack(withByteViews(value, WALK_DEPTH));
    }
    return packr.pack(value);
  } catch (e) {
    throw packError(e);
  }
}

/**
 * msgpackr's errors name its own settings (useBigIntExtension,
 * largeBigIntToFloat), which whirlwind does not let anyone set, or are a bare
 * stack overflow: say what the value held instead.
 */
function packError(e: unknown): Error {
  const m = e instanceof Error ? e.message : String(e);
  if (/bigint/i.test(m) && /(range|too large|useBigIntExtension|largeBigIntToFloat)/i.test(m)) {
    return new RangeError('the body holds a bigint outside the 64-bit range (-2^63 to 2^64-1), which MessagePack cannot carry', { cause: e });
  }
  if (e instanceof RangeError && /call stack/i.test(m)) {
    return new RangeError('the body nests too deeply or refers to itself (a cycle), which MessagePack cannot carry', { cause: e });
  }
  if (/Unknown type: symbol/i.test(m)) return new TypeError('the body holds a Symbol, which MessagePack cannot carry', { cause: e });
  return e instanceof Error ? e : new Error(m);
}

/** How deep packBody looks for nested views: the decoder's default maxDepth (deeper bodies are refused by receivers anyway). */
const WALK_DEPTH = 64;
/**
 * How many values one look may visit.  A body that references itself (which
 * msgpackr refuses by overflowing its stack) or shares one object at many
 * places could otherwise take a walk exponential in WALK_DEPTH; past the
 * budget the look gives up and the body goes to msgpackr as it is.
 */
const WALK_BUDGET = 1_000_000;
let walkBudget = 0;

/** Whether msgpackr packs this view right: a Buffer or a plain Uint8Array. */
function isByteArray(v: ArrayBufferView): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Buffer.prototype || proto === Uint8Array.prototype;
}

/** The bytes of a view: itself for a Buffer or Uint8Array, else a Uint8Array over the same memory. */
function byteView(v: ArrayBufferView): Uint8Array {
  return isByteArray(v) ? (v as Uint8Array) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** The containers packBody looks into, told apart by prototype (a key named "constructor" does not fool it). */
const enum Walk { NO, ARRAY, MAP, SET, OBJECT }
function walkKind(v: object): Walk {
  if (Array.isArray(v)) return Walk.ARRAY;
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) return Walk.OBJECT;
  if (proto === Map.prototype) return Walk.MAP;
  if (proto === Set.prototype) return Walk.SET;
  return Walk.NO;
}

/**
 * Whether v is, or holds within `depth` levels of arrays, plain objects,
 * Maps and Sets, a view msgpackr would mispack (any but Buffer/Uint8Array).
 * One pass with no allocation for bodies that hold none, which is nearly all.
 */
function holdsWideView(v: unknown, depth: number): boolean {
  if (typeof v !== 'object' || v === null || --walkBudget < 0) return false;
  if (ArrayBuffer.isView(v)) return !isByteArray(v);
  if (depth === 0) return false;
  switch (walkKind(v)) {
    case Walk.ARRAY:
      for (const x of v as unknown[]) if (holdsWideView(x, depth - 1)) return true;
      return false;
    case Walk.MAP:
      for (const [k, x] of v as Map<unknown, unknown>) if (holdsWideView(k, depth - 1) || holdsWideView(x, depth - 1)) return true;
      return false;
    case Walk.SET:
      for (const x of v as Set<unknown>) if (holdsWideView(x, depth - 1)) return true;
      return false;
    case Walk.OBJECT:
      for (const k in v) if (holdsWideView((v as Record<string, unknown>)[k], depth - 1)) return true;
      return false;
    default:
      return false;
  }
}

/** A copy of v's walked containers with every view replaced by byteView(view); everything else shared. */
function withByteViews(v: unknown, depth: number): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (ArrayBuffer.isView(v)) return byteView(v);
  if (depth === 0) return v;
  switch (walkKind(v)) {
    case Walk.ARRAY:
      return (v as unknown[]).map((x) => withByteViews(x, depth - 1));
    case Walk.MAP:
      return new Map([...(v as Map<unknown, unknown>)].map(([k, x]) => [withByteViews(k, depth - 1), withByteViews(x, depth - 1)]));
    case Walk.SET:
      return new Set([...(v as Set<unknown>)].map((x) => withByteViews(x, depth - 1)));
    case Walk.OBJECT: {
      // Own keys as msgpackr takes them; defineProperty, so that a key named
      // "__proto__" stays a key.
      const out: Record<string, unknown> = {};
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        Object.defineProperty(out, k, { value: withByteViews((v as Record<string, unknown>)[k], depth - 1), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    default:
      return v;
  }
}

/** Bodies up to this size are packed into one reused buffer; larger ones get their own. */
const BIN_SCRATCH_MAX = 64 * 1024;
let binScratch = Buffer.allocUnsafe(1024);

/** bin 8 / bin 16 / bin 32 (big-endian length), then the bytes. */
function packBin(bytes: Uint8Array): Buffer {
  const n = bytes.length;
  const head = n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  const size = head + n;
  let out: Buffer;
  if (size <= BIN_SCRATCH_MAX) {
    if (binScratch.length < size) binScratch = Buffer.allocUnsafe(BIN_SCRATCH_MAX);
    out = binScratch;
  } else {
    out = Buffer.allocUnsafe(size);
  }
  if (head === 2) {
    out[0] = 0xc4;
    out[1] = n;
  } else if (head === 3) {
    out[0] = 0xc5;
    out[1] = n >>> 8;
    out[2] = n & 0xff;
  } else {
    out[0] = 0xc6;
    out.writeUInt32BE(n, 1);
  }
  out.set(bytes, head);
  return out.subarray(0, size);
}

/**
 * Unpacks exactly buf[start, end) (already validated by scanMsgpack).
 * With `copy` false, `bin` values are views into `buf`.
 */
export function unpackBody(buf: Buffer, start: number, end: number, copy: boolean): unknown {
  // A body that is one bin (the common binary body) is taken here, as
  // msgpackr would give it: a view of the frame, or a copy of its own.
  const t = buf[start];
  if (t === 0xc4 || t === 0xc5 || t === 0xc6) {
    const head = t === 0xc4 ? 2 : t === 0xc5 ? 3 : 5;
    const n = t === 0xc4 ? (buf[start + 1] as number)
      : t === 0xc5 ? ((buf[start + 1] as number) << 8) | (buf[start + 2] as number)
      : readU32BE(buf, start + 1);
    if (start + head + n === end) {
      const view = buf.subarray(start + head, end);
      return copy ? Uint8Array.prototype.slice.call(view) : view;
    }
  }
  return (copy ? unpackrCopy : unpackrView).unpack(buf, { start, end });
}

let scanStack = new Float64Array(64);

/** Result of scanMsgpack: null when the bytes are one valid value, else why not. */
export type ScanFailure = string | null;

/**
 * Checks that buf[start, end) holds exactly one standard MessagePack value
 * nested at most `maxDepth` deep.  Returns null when it does, or a sentence
 * saying what is wrong.  Never allocates per value and never throws.
 */
export function scanMsgpack(buf: Uint8Array, start: number, end: number, maxDepth: number): ScanFailure {
  let pos = start;
  let remaining = 1; // values still to read at the current level
  // Remaining counts of the enclosing levels, in a module-scope array that
  // is reused by every scan (the scan never re-enters itself).
  if (scanStack.length < maxDepth) scanStack = new Float64Array(maxDepth);
  const stack = scanStack;
  let depth = 0;
  for (;;) {
    if (remaining === 0) {
      if (depth === 0) break;
      remaining = stack[--depth] as number;
      continue;
    }
    if (pos >= end) return `msgpack ends early at byte ${pos - start}`;
    remaining--;
    const t = buf[pos++] as number;
    let skip = 0; // payload bytes to skip
    let items = -1; // container item count (map entries count twice)
    if (t <= 0x7f || t >= 0xe0) continue; // fixint
    if (t <= 0x8f) items = (t & 0x0f) * 2;
    else if (t <= 0x9f) items = t & 0x0f;
    else if (t <= 0xbf) skip = t & 0x1f;
    else {
      switch (t) {
        case 0xc0: case 0xc2: case 0xc3: continue;
        case 0xc1: return `msgpack format byte 0xc1 (never used) at byte ${pos - 1 - start}`;
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xca: case 0xce: case 0xd2: skip = 4; break;
        case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
        case 0xc4: case 0xd9: // bin 8, str 8
          if (pos + 1 > end) return `msgpack ends early at byte ${pos - start}`;
          skip = 1 + (buf[pos] as number);
          break;
        case 0xc5: case 0xda: // bin 16, str 16
          if (pos + 2 > end) return `msgpack ends early at byte ${pos - start}`;
          skip = 2 + (((buf[pos] as number) << 8) | (buf[pos + 1] as number));
          break;
        case 0xc6: case 0xdb: // bin 32, str 32
          if (pos + 4 > end) return `msgpack ends early at byte ${pos - start}`;
          skip = 4 + readU32BE(buf, pos);
          break;
        case 0xdc: case 0xde: // array 16, map 16
          if (pos + 2 > end) return `msgpack ends early at byte ${pos - start}`;
          items = (((buf[pos] as number) << 8) | (buf[pos + 1] as number)) * (t === 0xde ? 2 : 1);
          pos += 2;
          break;
        case 0xdd: case 0xdf: // array 32, map 32
          if (pos + 4 > end) return `msgpack ends early at byte ${pos - start}`;
          items = readU32BE(buf, pos) * (t === 0xdf ? 2 : 1);
          pos += 4;
          break;
        case 0xd6: // fixext 4
        case 0xd7: // fixext 8
        case 0xc7: { // ext 8
          let length: number;
          if (t === 0xc7) {
            if (pos + 1 > end) return `msgpack ends early at byte ${pos - start}`;
            length = buf[pos++] as number;
          } else length = t === 0xd6 ? 4 : 8;
          if (pos + 1 > end) return `msgpack ends early at byte ${pos - start}`;
          const type = buf[pos++] as number;
          if (type !== 0xff) return `msgpack extension type ${(type << 24) >> 24} at byte ${pos - 2 - start} is not allowed (only -1, timestamp)`;
          if (length !== 4 && length !== 8 && length !== 12) return `msgpack timestamp of ${length} bytes at byte ${pos - 2 - start} (must be 4, 8 or 12)`;
          skip = length;
          break;
        }
        default: // 0xc8, 0xc9 (ext 16/32), 0xd4, 0xd5, 0xd8 (fixext 1/2/16)
          return `msgpack extension format 0x${t.toString(16)} at byte ${pos - 1 - start} is not allowed (only timestamp -1)`;
      }
    }
    if (skip > 0) {
      pos += skip;
      if (pos > end) return `msgpack ends early: a value at byte ${pos - skip - start} needs ${pos - end} more bytes`;
    } else if (items > 0) {
      // Every item takes at least one byte, so a count above the bytes left is corrupt.
      if (items > end - pos) return `msgpack container at byte ${pos - start} declares ${items} items but only ${end - pos} bytes remain`;
      if (depth >= maxDepth) return `msgpack nesting deeper than maxDepth ${maxDepth}`;
      stack[depth++] = remaining;
      remaining = items;
    }
  }
  if (pos !== end) return `msgpack value ends at byte ${pos - start} but the body has ${end - start} bytes`;
  return null;
}

function readU32BE(buf: Uint8Array, pos: number): number {
  return (((buf[pos] as number) << 24) >>> 0) + (((buf[pos + 1] as number) << 16) | ((buf[pos + 2] as number) << 8) | (buf[pos + 3] as number));
}
