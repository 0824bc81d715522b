// Actor state persists across turns that run on different workers: what
// turn N left is what turn N+1 sees, for 10,000 turns.
import { describe, expect, it } from 'vitest';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';

useActorServers();

describe('actor state continuity', () => {
  it('carries each connection\'s state through 10,000 turns on a pool of several workers', async () => {
    const s = await startServer({ minWorkers: 3, maxWorkers: 3 });
    const clients = await Promise.all([0, 1, 2, 3].map(() => client(s)));
    const TURNS = 10_000;
    const per = TURNS / clients.length;
    const threads = new Set<number>();
    await Promise.all(
      clients.map(async (c) => {
        let expected = 1;
        for (let sent = 0; sent < per; ) {
          const burst = Math.min(per - sent, 1 + Math.floor(Math.random() * 50));
          const replies = await Promise.all(Array.from({ length: burst }, () => c.request<{ n: number; thread: number; dateOk: boolean }>('count')));
          for (const r of replies) {
            expect(r.body.n).toBe(expected++);
            expect(r.body.dateOk).toBe(true); // a Date in the state stays a Date
            threads.add(r.body.thread);
          }
          sent += burst;
        }
      }),
    );
    expect(s.stats().turns).toBeLessThan(TURNS); // several queued turns ran in one task
    expect(threads.size).toBeGreaterThan(1);
  });
});
