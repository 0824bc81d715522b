// docs/api.md must show the same defaults as the code (ENGINE_DEFAULTS, ACTOR_DEFAULTS).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ACTOR_DEFAULTS, ENGINE_DEFAULTS } from '../src/index.js';

const doc = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8');

/** The default cell of `option`'s row, in the part of the doc that starts at `heading`. */
function documentedDefault(option: string, heading: string): string {
  const from = doc.indexOf(heading);
  if (from < 0) throw new Error(`docs/api.md has no heading ${heading}`);
  const row = doc.slice(from).split('\n').find((l) => l.startsWith(`| \`${option}\` |`));
  if (!row) throw new Error(`docs/api.md has no row for option ${option} under ${heading}`);
  const cells = row.split(/(?<!\\)\|/).map((c) => c.trim());
  return cells[3]!; // | name | type | default | meaning |
}

function literalOf(cell: string): string | undefined {
  return /^`([^`]*)`/.exec(cell)?.[1];
}

function expected(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}

describe('docs/api.md', () => {
  it.each(Object.keys(ENGINE_DEFAULTS))('documents the default of engine option %s as the code has it', (option) => {
    const cell = documentedDefault(option, '#### Engine options');
    const value = (ENGINE_DEFAULTS as Record<string, unknown>)[option];
    if (option === 'ioThreads') {
      expect(cell).toMatch(/^`defaultIoThreads\(\)`/);
      return;
    }
    expect(literalOf(cell), `default cell of ${option}: ${cell}`).toBe(expected(value));
  });

  it.each(Object.keys(ACTOR_DEFAULTS))('documents the default of actor option %s as the code has it', (option) => {
    const cell = documentedDefault(option, '#### Actor options');
    const value = (ACTOR_DEFAULTS as Record<string, unknown>)[option];
    if (option === 'maxWorkers') {
      expect(cell).toMatch(/^`defaultMaxWorkers\(\)`/);
      return;
    }
    expect(literalOf(cell), `default cell of ${option}: ${cell}`).toBe(expected(value));
  });

  it('keeps the worker idle timeout default away from 0 (piscina\'s 0 thrashed workers)', () => {
    expect(ACTOR_DEFAULTS.workerIdleTimeoutMs).toBeGreaterThanOrEqual(10_000);
  });
});
