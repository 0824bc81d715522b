import { describe, expect, it } from 'vitest';
import { LAYOUT, layoutMismatches } from '../src/layout.js';
import { loadAddon } from '../src/native.js';

describe('layout', () => {
  it('the addon exports exactly the layout TypeScript was written against', () => {
    const native = loadAddon().layout;
    expect(layoutMismatches(native)).toEqual([]);
    expect(native.version).toBe(LAYOUT.version);
  });

  it('a mismatch is reported by name', () => {
    const native = { ...loadAddon().layout, recordHeaderBytes: 24 };
    expect(layoutMismatches(native)).toEqual(['recordHeaderBytes: TypeScript 16, native 24']);
  });
});
