// viewOf (src/view.ts): the per-frame Buffer view over ring and task memory.
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { viewIsFast, viewOf } from '../src/view.js';

describe(`viewOf (${viewIsFast ? "Node's FastBuffer" : 'Buffer.from'})`, () => {
  it('is a Buffer over the given bytes, sharing their memory', () => {
    const memory = new ArrayBuffer(64);
    const bytes = new Uint8Array(memory);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i;
    const v = viewOf(memory, 8, 5);
    expect(Buffer.isBuffer(v)).toBe(true);
    expect(v.constructor).toBe(Buffer);
    expect(v.buffer).toBe(memory);
    expect(v.byteOffset).toBe(8);
    expect([...v]).toEqual([8, 9, 10, 11, 12]);
    expect(v.toString('hex')).toBe('08090a0b0c');
    expect(v.readUInt32LE(1)).toBe(0x0c0b0a09);
    bytes[9] = 0xff; // no copy: the view sees later writes
    expect(v[1]).toBe(0xff);
    const sub = v.subarray(1, 3);
    expect(Buffer.isBuffer(sub)).toBe(true);
    expect([...sub]).toEqual([0xff, 10]);
  });

  it('works over a SharedArrayBuffer and for zero bytes at the end', () => {
    const shared = new SharedArrayBuffer(16);
    new Uint8Array(shared)[15] = 7;
    expect([...viewOf(shared, 15, 1)]).toEqual([7]);
    const empty = viewOf(shared, 16, 0);
    expect(Buffer.isBuffer(empty)).toBe(true);
    expect(empty.length).toBe(0);
  });
});
