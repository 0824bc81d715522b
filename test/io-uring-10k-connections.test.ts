// 10,000 connections on the io_uring backend: the client side runs in a
// child process (build/Release/ww_loadgen), so the server's process holds
// only its own 10,000 sockets under the open-file limit.  Every connection
// is accepted (multishot accept), held idle with a multishot recv armed and
// no receive buffer, then echoes, then closes: one open and one close each.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { listenRaw, type RawServer } from '../src/index.js';
import { until } from './fixtures/framed-client.js';
import { uringAvailable, uringTitle } from './fixtures/io-uring.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOADGEN = path.join(ROOT, 'build', 'Release', 'ww_loadgen');
const N = 10_000;

const servers: RawServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

function loadgen(args: string[]): Promise<{ code: number | null; result: Record<string, unknown>; out: string }> {
  if (!fs.existsSync(LOADGEN)) {
    throw new Error(`${LOADGEN} is missing: build it with 'npm install' (node-gyp rebuild)`);
  }
  return new Promise((resolve) => {
    const p = spawn(LOADGEN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      resolve({ code, out, result: line ? JSON.parse(line.slice(7)) : {} });
    });
  });
}

describe.skipIf(!uringAvailable)(uringTitle('io_uring with 10,000 connections'), () => {
  it('accepts, holds, echoes on and closes 10,000 connections', { timeout: 120_000 }, async () => {
    let opens = 0;
    let closes = 0;
    const reasons = new Map<string, number>();
    const server = listenRaw(
      { backend: 'io_uring' },
      {
        open() {
          opens++;
        },
        frame(conn, data) {
          server.send(conn, data);
        },
        close(_c, info) {
          closes++;
          reasons.set(info.reason, (reasons.get(info.reason) ?? 0) + 1);
        },
      },
    );
    servers.push(server);
    expect(server.backend).toBe('io_uring');

    // Phase 1: 10,000 idle connections, held for a while.
    const held = loadgen([
      '--port', String(server.port), '--connect-only', '-c', String(N), '--hold', '4',
      '--connect-timeout', '30', '--quiet',
    ]);
    await until(() => opens === N, 60_000, `${N} opens (have ${opens})`);
    expect(server.stats().connections.open).toBe(N);
    const r1 = await held;
    expect(r1.result.ok, r1.out).toBe(true);
    expect(r1.result.errors).toBe(0);
    await until(() => closes === N, 30_000, `${N} closes (have ${closes})`);
    expect(reasons.get('peer')).toBe(N);

    // Phase 2: every one of 10,000 connections echoes byte-exact.
    const echo = await loadgen([
      '--port', String(server.port), '-c', String(N), '-p', '1', '-s', '64',
      '-d', '2', '-w', '0.5', '--connect-timeout', '30', '--quiet',
    ]);
    expect(echo.result.ok, echo.out).toBe(true);
    expect(echo.result.mismatches).toBe(0);
    expect(Number(echo.result.replies)).toBeGreaterThan(N);
    try {
      await until(() => closes === 2 * N, 30_000, `${2 * N} closes`);
    } catch (e) {
      // Seen once (CI of b2470be: 18,482 closes after 30 s), never again in
      // 14 runs: say where the missing connections are if it comes back.
      const { ok, replies, unanswered, errors, conn_errors } = echo.result;
      throw new Error(
        `${(e as Error).message}: ${opens} opens and ${closes} closes seen; ` +
          `server stats ${JSON.stringify(server.stats())}; load generator ${JSON.stringify({ ok, replies, unanswered, errors, conn_errors })}`,
      );
    }
    expect(server.stats().connections.open).toBe(0);
    expect(server.stats().connections.accepted).toBe(2 * N);
  });
});
