// Dispatch keeps a worker fed when its tasks run long: once tasks keep a
// worker busy for a millisecond or more, one more task per worker waits in
// the pool's queue behind the running one, and a task takes only as many
// turns as its worker gets through in about 2 ms (docs/design.md, "Batches,
// not one task per message").  The queue never grows past that, and the
// answers still come back whole and in order.
import { describe, expect, it } from 'vitest';
import { ErrorCode, type TurnFailure } from '../src/index.js';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';

useActorServers();

describe('actor dispatch', () => {
  it('queues one more task per worker behind tasks that run long, never more, cuts slow turns into short tasks, and answers every request in order', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 1 });
    const clients = await Promise.all([0, 1, 2, 3, 4, 5].map(() => client(s)));
    let most = 0;
    const sample = (): void => {
      most = Math.max(most, s.stats().tasksInFlight);
    };
    const sampler = setInterval(sample, 1);
    try {
      await Promise.all(
        clients.map(async (c, i) => {
          for (let k = 0; k < 12; k++) {
            const r = await c.request<number>('burn', { ms: 3 + (i % 3) });
            expect(r.body).toBe(3 + (i % 3));
            sample();
          }
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    // 1 is what dispatch allowed before this: a second task only while the first runs long.
    expect(most).toBe(2);
    expect(s.stats().requests).toBe(6 * 12);
    // A turn here takes 3-5 ms, more than a task should (about 2 ms): once
    // the first tasks have shown that, a task carries one turn (without the
    // cap, 30 tasks carried these 78 turns).
    const { tasks, turns } = s.stats();
    expect(tasks).toBeGreaterThan(0.75 * turns);
  });

  it('still runs turns that await side by side: awaiting is not slow work, and does not cut tasks short', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 1 });
    const clients = await Promise.all(Array.from({ length: 16 }, () => client(s)));
    let most = 0;
    for (let round = 0; round < 5; round++) {
      const counts = await Promise.all(clients.map(async (c) => (await c.request<number>('overlap', { ms: 30 })).body));
      // Round 0 runs before dispatch has seen any task; the later ones show what it learned.
      if (round > 0) most = Math.max(most, ...counts);
    }
    // Taking the 30 ms awaits for work made every task one turn: 1 at a time.
    expect(most).toBeGreaterThanOrEqual(4);
  });

  it('gives a task queued behind a stuck one its own time: only the stuck turn times out', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 1, handlerTimeoutMs: 200 });
    const [a, b] = await Promise.all([client(s), client(s)]);
    // Slow tasks first, so that dispatch queues a second task behind a running one.
    for (let i = 0; i < 4; i++) expect((await a.request('burn', { ms: 5 })).body).toBe(5);
    const failed: TurnFailure[] = [];
    s.on('turnFailed', (f: TurnFailure) => failed.push(f));
    const [loop, echo] = await Promise.allSettled([a.request('loop'), b.request('echo', 'behind')]);
    expect(loop).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.TIMEOUT, remote: true } });
    // Its watchdog started when it was posted, a moment after the stuck one's:
    // without the allowance it was aborted along with it and answered TIMEOUT.
    expect(echo).toMatchObject({ status: 'fulfilled', value: { body: 'behind' } });
    expect(failed).toEqual([expect.objectContaining({ action: 'loop', code: ErrorCode.TIMEOUT })]);
  });
});
