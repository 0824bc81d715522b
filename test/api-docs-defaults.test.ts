// docs/api.md must show the same defaults as the code (ENGINE_DEFAULTS, ACTOR_DEFAULTS).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

  // The Windows run (test/windows) installs vitest alone, not the TypeScript
  // compiler; the example is the same there, and the Linux run compiles it.
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const noTsc = existsSync(tsc) ? '' : ' (skipped: the TypeScript compiler is not installed here)';
  it.skipIf(noTsc !== '')(`has a TypeScript actor example that compiles under strict, against the package as built${noTsc}`, () => {
    const from = doc.indexOf('// chat-actor.ts');
    const to = doc.indexOf('// server.ts', from);
    expect(from).toBeGreaterThan(0);
    const dir = mkdtempSync(join(tmpdir(), 'ww-doc-ts-'));
    try {
      const index = fileURLToPath(new URL('../dist/src/index.js', import.meta.url));
      writeFileSync(join(dir, 'chat-actor.ts'), doc.slice(from, to).replace(/from 'whirlwind'/g, `from ${JSON.stringify(index)}`));
      const r = spawnSync(process.execPath, [tsc, '--strict', '--noEmit', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', join(dir, 'chat-actor.ts')], { encoding: 'utf8', timeout: 60_000 });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the worker idle timeout default away from 0 (piscina\'s 0 thrashed workers)', () => {
    expect(ACTOR_DEFAULTS.workerIdleTimeoutMs).toBeGreaterThanOrEqual(10_000);
  });
});
