// layout.ts - the byte layouts shared with native code (native/src/layout.h
// draws them).  These are the numbers the TypeScript side was written
// against; checkLayout() compares them with what the addon exports and
// refuses to run on a mismatch, so a stale build cannot silently corrupt data.
import type { NativeLayout } from './native.js';

export const LAYOUT = Object.freeze({
  version: 6,
  slotBits: 20,
  threadBits: 6,
  genBits: 27,
  maxSlotsPerThread: 1 << 20,
  maxIoThreads: 64,
  controlBytes: 64,
  ctlVersion: 0,
  ctlRingCount: 4,
  ctlRingBytes: 8,
  ctlWakePending: 12,
  ringHeaderBytes: 128,
  ringTail: 0,
  ringHead: 64,
  ringStalled: 68,
  minRingBytes: 4096,
  statsBytes: 256,
  statCount: 23,
  statAccepted: 0,
  statOpen: 1,
  statClosedBase: 2,
  statFramesIn: 12,
  statBytesIn: 13,
  statSendsOut: 14,
  statBytesOut: 15,
  statRingStalls: 16,
  statDeferred: 17,
  statAcceptErrors: 18,
  statStaleOps: 19,
  statWakeups: 20,
  statRefused: 21,
  statPendingBytes: 22,
  maxRingBytes: 1 << 30,
  recordHeaderBytes: 16,
  recordAlign: 16,
  recKind: 0,
  recFlags: 2,
  recFlagChecked: 0x8000,
  recFlagHeld: 1,
  recLength: 4,
  recToken: 8,
  recPad: 0,
  recOpen: 1,
  recFrame: 2,
  recFrameLarge: 3,
  recClose: 4,
  recDrain: 5,
  recStopped: 6,
  batchHeaderBytes: 16,
  batchAlign: 8,
  opSend: 1,
  opClose: 2,
  opCloseFlushed: 3,
  opPauseRecv: 4,
  opResumeRecv: 5,
  opAdmit: 6,
  opRefuse: 7,
  closePeer: 1,
  closeError: 2,
  closeLocal: 3,
  closeLocalFlushed: 4,
  closeFrameTooLarge: 5,
  closeServerClosing: 6,
  closeOutOfMemory: 7,
  closeIdle: 8,
  closeRefused: 9,
});

export type Layout = typeof LAYOUT;

/** Differences between the TS layout and the addon's, as readable lines. */
export function layoutMismatches(native: NativeLayout): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(LAYOUT), ...Object.keys(native)]);
  for (const k of keys) {
    const want = (LAYOUT as Record<string, number>)[k];
    const got = native[k];
    if (want !== got) out.push(`${k}: TypeScript ${want}, native ${got}`);
  }
  return out;
}

export function checkLayout(native: NativeLayout): void {
  const bad = layoutMismatches(native);
  if (bad.length) {
    throw new Error(
      `whirlwind: the native addon's layout does not match this TypeScript build (rebuild with "npm install"): ${bad.join('; ')}`,
    );
  }
}

const SLOT_MASK = 2 ** LAYOUT.slotBits - 1;
const THREAD_MASK = 2 ** LAYOUT.threadBits - 1;
const GEN_SHIFT = 2 ** (LAYOUT.slotBits + LAYOUT.threadBits);

// Tokens are doubles holding integers below 2^53 (gen | thread | slot, see
// layout.h).  `>>> 0` takes the low 32 bits exactly (ToUint32 is modulo
// 2^32), which hold slot and thread; the generation is the exact quotient by
// 2^(slot+thread bits), below 2^32.  Integer ops instead of % and
// Math.floor on doubles: these run on every send.  Callers check that a
// token is a non-negative integer before trusting the parts.

/** Decode a connection token (see layout.h for the bit layout). */
export function tokenSlot(token: number): number {
  return (token >>> 0) & SLOT_MASK;
}
export function tokenThread(token: number): number {
  return ((token >>> 0) >>> LAYOUT.slotBits) & THREAD_MASK;
}
export function tokenGen(token: number): number {
  return (token / GEN_SHIFT) >>> 0;
}
