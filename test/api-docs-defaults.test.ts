// docs/api.md must show the same defaults as the code (ENGINE_DEFAULTS).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ENGINE_DEFAULTS } from '../src/index.js';

const doc = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8');

function documentedDefault(option: string): string {
  const row = doc.split('\n').find((l) => l.startsWith(`| \`${option}\` |`));
  if (!row) throw new Error(`docs/api.md has no row for option ${option}`);
  const cells = row.split(/(?<!\\)\|/).map((c) => c.trim());
  return cells[3]!; // | name | type | default | meaning |
}

describe('docs/api.md', () => {
  it.each(Object.keys(ENGINE_DEFAULTS))('documents the default of %s as the code has it', (option) => {
    const cell = documentedDefault(option);
    const value = (ENGINE_DEFAULTS as Record<string, unknown>)[option];
    if (option === 'ioThreads') {
      expect(cell).toMatch(/^`defaultIoThreads\(\)`/);
      return;
    }
    const literal = /^`([^`]*)`/.exec(cell)?.[1];
    expect(literal, `default cell of ${option}: ${cell}`).toBe(typeof value === 'string' ? `'${value}'` : String(value));
  });
});
