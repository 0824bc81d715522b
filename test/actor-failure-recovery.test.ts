// Failures stay small: a handler that throws or runs past its time fails
// its request only; a worker that dies (uncaught error, process.exit, out
// of memory, stopped for a handler stuck in a loop) fails only the turns it
// was running; the pool replaces it and every other connection carries on.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Client, ErrorCode, type TurnFailure } from '../src/index.js';
import { client, codeOf, startServer, useActorServers } from './fixtures/actor-server.js';

useActorServers();

async function countTo(c: Client, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) expect((await c.request<{ n: number }>('count')).body.n).toBeGreaterThan(0);
}

describe('actor failure recovery', () => {
  it('event listeners that throw: the server carries on and the errors surface as uncaught exceptions', () => {
    // In a child process, which catches its uncaught exceptions (here they would fail the run).
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('./fixtures/actor-throwing-listeners.mjs', import.meta.url))], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      echo: 'hi',
      connected: true, // the onConnected turn ran after the throwing 'connection' listener
      failed: ErrorCode.HANDLER_ERROR,
      after: 'after',
      second: 'two',
      closed: true,
      uncaught: ['listener of close', 'listener of close', 'listener of connection', 'listener of connection', 'listener of turnFailed'],
    });
  });

  it('answers a handler past handlerTimeoutMs with TIMEOUT and discards its late result', async () => {
    const s = await startServer({ handlerTimeoutMs: 200 });
    const c = await client(s);
    const late: unknown[] = [];
    c.on('push', (p) => late.push(p));
    const [hang, after] = await Promise.allSettled([c.request('hang'), c.request('echo', 'next')]);
    expect((hang as PromiseRejectedResult).reason).toMatchObject({ code: ErrorCode.TIMEOUT, remote: true });
    expect((after as PromiseFulfilledResult<{ body: unknown }>).value.body).toBe('next');
    // The hung handler finishes at 1.5 s and pushes: nothing of it may arrive.
    await new Promise((r) => setTimeout(r, 1700));
    expect(late).toEqual([]);
    expect((await c.request<{ failures: number }>('state')).body.failures).toBe(1);
  });

  it('allows a task its onTurnFailed hooks too: pipelined timeouts with an awaiting hook do not get the worker stopped', async () => {
    // 20 requests x (200 ms handler timeout + 150 ms hook) = 7 s: over the
    // 200 x 21 + 1000 = 5.2 s the watchdog allowed when it counted handlers
    // only, by more than the once-a-second sweep that watches turns which
    // await (these do: the task has returned, the turn runs on), so a
    // handlers-only allowance has the worker stopped at the 6 s sweep.
    const N = 20;
    const s = await startServer({ actor: new URL('./fixtures/actors/slow-hook-actor.mjs', import.meta.url), handlerTimeoutMs: 200, maxWorkers: 1 });
    const c = await client(s);
    const codes = await Promise.all(Array.from({ length: N }, () => codeOf(c.request('wait'))));
    expect(codes).toEqual(Array(N).fill(ErrorCode.TIMEOUT));
    // Every hook ran and its state stayed (a stopped worker would have lost it).
    expect((await c.request('failed')).body).toBe(N);
  });

  it('stops a worker stuck in a synchronous loop, answers TIMEOUT, and carries on', async () => {
    const s = await startServer({ handlerTimeoutMs: 200, minWorkers: 2, maxWorkers: 2 });
    const a = await client(s);
    const b = await client(s);
    await countTo(a, 3);
    const failed: TurnFailure[] = [];
    s.on('turnFailed', (f: TurnFailure) => failed.push(f));
    const loop = codeOf(a.request('loop'));
    // b keeps being served while a's worker spins.
    for (let i = 0; i < 5; i++) expect((await b.request('echo', i)).body).toBe(i);
    expect(await loop).toBe(ErrorCode.TIMEOUT);
    expect(failed).toEqual([expect.objectContaining({ action: 'loop', code: ErrorCode.TIMEOUT })]);
    // a's state is what it was before the lost turn; the hook saw the failure.
    const st = (await a.request<{ n: number; failures: number }>('state')).body;
    expect(st).toEqual({ n: 3, failures: 1, connected: true });
  });

  for (const action of ['crash', 'exit'] as const) {
    it(`fails only the dying worker's turns (${action === 'crash' ? 'uncaught error' : 'process.exit'}); the pool replaces it`, async () => {
      const s = await startServer({ minWorkers: 2, maxWorkers: 2 });
      const a = await client(s);
      const b = await client(s);
      await countTo(a, 2);
      // b's turn keeps the other worker's thread busy (a turn that awaited
      // would have freed it, and the crash could come to run beside it).
      const slow = b.request('burn', { ms: 300 });
      await new Promise((r) => setTimeout(r, 50));
      expect(await codeOf(a.request(action))).toBe(ErrorCode.INTERNAL);
      expect((await slow).body).toBe(300);
      // a lives on with its state, on a replacement worker.
      expect((await a.request<{ n: number }>('count')).body.n).toBe(3);
      expect((await a.request<{ failures: number }>('state')).body.failures).toBe(1);
      expect(s.stats().workers).toBeGreaterThanOrEqual(1);
    });
  }

  it('workers that keep crashing: the per-worker turn counts hold the live workers only (ended ones count on under 0)', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 1 });
    const a = await client(s);
    for (let i = 0; i < 6; i++) {
      expect((await a.request('echo', i)).body).toBe(i);
      expect(await codeOf(a.request('crash'))).toBe(ErrorCode.INTERNAL);
    }
    expect((await a.request('echo', 'last')).body).toBe('last');
    const st = s.stats();
    // Seven workers ran turns; one is alive.
    expect(Object.keys(st.workerTurns).sort()).toEqual(['0', expect.stringMatching(/^[1-9]/)]);
    // Every turn but the six that crashed (they came back with no result).
    expect(Object.values(st.workerTurns).reduce((x, y) => x + y, 0)).toBe(st.turns - 6);
  });

  it('recovers from a worker that runs out of memory under resourceLimits', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 2, resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } });
    const a = await client(s);
    const b = await client(s);
    const failed: TurnFailure[] = [];
    s.on('turnFailed', (f: TurnFailure) => failed.push(f));
    expect(await codeOf(a.request('oom'))).toBe(ErrorCode.INTERNAL);
    expect(failed[0]?.message).toMatch(/memory/i);
    expect((await b.request('echo', 'fine')).body).toBe('fine');
    expect((await a.request<{ n: number }>('count')).body.n).toBe(1);
  });
});
