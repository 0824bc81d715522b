// Ordering under adversarial timing, checked by the clients: pipelined
// requests, random handler delays, workers of different speeds, the main
// thread pushing into turns while they run, and clients' turns pushing to
// each other.  Per connection the client must see:
//   - replies in request order, every request answered;
//   - a turn's own pushes right after its reply, before the next reply;
//   - a push queued while turn k ran (the test pushes when the turn
//     announces itself) never before reply k;
//   - pushes from one source in the order that source queued them.
import { BroadcastChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { Client, Push } from '../src/index.js';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';

useActorServers();

type Event = { t: 'reply'; k: number } | { t: 'push'; topic: string; body: Record<string, number> };

describe('actor push ordering', () => {
  it('never puts a push between a request and its reply when it was queued during that turn', async () => {
    const s = await startServer({ minWorkers: 3, maxWorkers: 3, maxTurnsPerConnection: 4 });
    const N = 6;
    const PER = 120;
    const clients: Client[] = [];
    for (let i = 0; i < N; i++) clients.push(await client(s));
    const ids = await Promise.all(clients.map(async (c) => (await c.request<{ conn: number }>('whoami')).body.conn));
    const events: Event[][] = clients.map(() => []);
    clients.forEach((c, i) => c.on('push', (p: Push) => events[i]!.push({ t: 'push', topic: p.topic, body: p.body as Record<string, number> })));

    // The main thread pushes into every turn it hears start, and on its own at random.
    const turns = new BroadcastChannel('whirlwind-test-turns');
    let mainSeq = 0;
    turns.onmessage = (ev) => {
      const { conn, k } = (ev as MessageEvent).data as { conn: number; k: number };
      s.push(conn, 'during', { k, seq: mainSeq++ });
    };
    const ticker = setInterval(() => {
      for (const id of ids) if (Math.random() < 0.3) s.push(id, 'main', { seq: mainSeq++ });
    }, 2);

    try {
      await Promise.all(
        clients.map(async (c, i) => {
          const pending: Promise<void>[] = [];
          for (let k = 0; k < PER; k++) {
            const to = Math.random() < 0.3 ? [ids[(i + 1 + Math.floor(Math.random() * (N - 1))) % N]!] : [];
            const pushes = Math.floor(Math.random() * 3);
            pending.push(
              c.request<{ k: number }>('turn', { k, pushes, to, maxMs: 4 }).then((r) => {
                events[i]!.push({ t: 'reply', k: r.body.k });
              }),
            );
            // Pipeline in bursts of random depth.
            if (Math.random() < 0.2) await Promise.all(pending.splice(0));
          }
          await Promise.all(pending);
        }),
      );
    } finally {
      clearInterval(ticker);
      turns.close();
    }
    // Let the last pushes land.
    await new Promise((r) => setTimeout(r, 100));

    let duringChecked = 0;
    for (let i = 0; i < N; i++) {
      const ev = events[i]!;
      const replies = ev.filter((e) => e.t === 'reply').map((e) => (e as { k: number }).k);
      expect(replies).toEqual(Array.from({ length: PER }, (_, k) => k));
      let lastReply = -1;
      let mainLast = -1;
      const fromLast = new Map<number, number>();
      for (let j = 0; j < ev.length; j++) {
        const e = ev[j]!;
        if (e.t === 'reply') {
          lastReply = e.k;
          continue;
        }
        const b = e.body;
        if (e.topic === 'self') {
          // Right after its own reply: the last reply seen is that turn's.
          expect(lastReply, `self push of turn ${b.k} on client ${i}`).toBe(b.k);
        } else if (e.topic === 'during') {
          expect(lastReply, `push queued during turn ${b.k} on client ${i}`).toBeGreaterThanOrEqual(b.k!);
          duringChecked++;
        }
        if (e.topic === 'during' || e.topic === 'main') {
          expect(b.seq!).toBeGreaterThan(mainLast);
          mainLast = b.seq!;
        }
        if (e.topic === 'peer') {
          expect(b.k!).toBeGreaterThan(fromLast.get(b.from!) ?? -1);
          fromLast.set(b.from!, b.k!);
        }
      }
    }
    // The check above ran on real data: the turns were announced and pushed into.
    expect(duringChecked).toBeGreaterThan(N * PER * 0.5);
  });
});
