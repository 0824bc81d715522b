// view.ts - a Buffer over part of an ArrayBuffer, made once per frame.
//
// Buffer.from(arrayBuffer, offset, length) checks its arguments first, and
// one of those checks (isAnyArrayBuffer) is a call into C++, paid for every
// frame the ring hands out: bench/ring-drain.mjs drains a batch in about
// half the time per frame without it (50 ns against 102 ns on the 2-core VM
// of bench/RESULTS.md, 2026-11-28).  Node makes its own views with
// FastBuffer, the Uint8Array subclass whose prototype is Buffer.prototype,
// and hands that class out as Buffer[Symbol.species] (what subarray()
// constructs with).  Where that is so, views are made with it directly; the
// callers have already checked offset and length against the memory they
// own.  Anywhere else (a runtime that does not do this), Buffer.from.
import { Buffer } from 'node:buffer';

type ViewClass = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => Buffer;

const species: unknown = (Buffer as unknown as Record<symbol, unknown>)[Symbol.species];
const FastView: ViewClass | null =
  typeof species === 'function' && species !== Buffer && species.prototype === Buffer.prototype ? (species as ViewClass) : null;

/** A Buffer over `length` bytes of `buffer` from `byteOffset` (no copy; the caller checks the bounds). */
export const viewOf: (buffer: ArrayBufferLike, byteOffset: number, length: number) => Buffer = FastView
  ? (buffer, byteOffset, length) => new FastView(buffer, byteOffset, length)
  : (buffer, byteOffset, length) => Buffer.from(buffer as ArrayBuffer, byteOffset, length);

/** Whether viewOf uses Node's FastBuffer (for tests). */
export const viewIsFast = FastView !== null;
