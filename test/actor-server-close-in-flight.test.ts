// server.close() with turns in flight: every request the server accepted
// gets its reply or an error reply, then GOAWAY SHUTTING_DOWN, then the close.
import { describe, expect, it } from 'vitest';
import { ErrorCode, ProtocolError, type Reply } from '../src/index.js';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';
import { waitFor } from './fixtures/wait.js';

useActorServers();

type Outcome = { ok: true; value: unknown } | { ok: false; code: number; remote: boolean };
const outcome = (p: Promise<Reply>): Promise<Outcome> =>
  p.then(
    (r) => ({ ok: true as const, value: r.body }),
    (e: ProtocolError) => ({ ok: false as const, code: e.code, remote: e.remote }),
  );

// shutdown() is close() under the name operators look for: both run the same cases.
describe.each(['close', 'shutdown'] as const)('actor server %s()', (method) => {
  it('finishes the turns in flight and queued before closing', async () => {
    const s = await startServer({ minWorkers: 2, maxWorkers: 2 });
    const clients = await Promise.all([0, 1, 2].map(() => client(s)));
    const N = 20;
    const all = clients.flatMap((c) => Array.from({ length: N }, (_, i) => outcome(c.request('sleep', { ms: 5 + (i % 3) * 10, value: i }))));
    // Every request is in a mailbox: accepted before close() (later ones would be answered SHUTTING_DOWN).
    await waitFor(() => s.stats().requests >= 3 * N, 'all requests accepted');
    const closed = s[method]({ deadlineMs: 10_000 });
    const results = await Promise.all(all);
    await closed;
    expect(results.filter((r) => !r.ok)).toEqual([]);
    for (const c of clients) {
      await waitFor(() => c.state === 'closed', 'client closed');
      expect(c.goAway).toMatchObject({ code: ErrorCode.SHUTTING_DOWN });
    }
  });

  it('answers what is left at the deadline with SHUTTING_DOWN instead of dropping it', async () => {
    const s = await startServer({ minWorkers: 1, maxWorkers: 1 });
    const c = await client(s);
    const all = Array.from({ length: 10 }, (_, i) => outcome(c.request('sleep', { ms: 1000, value: i })));
    await waitFor(() => s.stats().requests >= 10, 'all requests accepted');
    await s[method]({ deadlineMs: 200 });
    const results = await Promise.all(all);
    // Each was answered by the server (remote): replies for what finished, SHUTTING_DOWN for the rest.
    for (const r of results) if (!r.ok) expect(r).toEqual({ ok: false, code: ErrorCode.SHUTTING_DOWN, remote: true });
    expect(results.filter((r) => !r.ok).length).toBeGreaterThan(0);
    await waitFor(() => c.state === 'closed', 'client closed');
  });
});

describe('actor server close', () => {
  it('closes gracefully on SIGTERM when closeOnSignals() wired it', async () => {
    const s = await startServer();
    const c = await client(s);
    const before = process.listenerCount('SIGTERM');
    const off = s.closeOnSignals({ deadlineMs: 1000 });
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    const pending = c.request('sleep', { ms: 100, value: 'finished' });
    await waitFor(() => s.stats().requests >= 1, 'request accepted');
    process.emit('SIGTERM', 'SIGTERM');
    expect((await pending).body).toBe('finished');
    await waitFor(() => c.state === 'closed', 'client closed');
    expect(c.goAway).toMatchObject({ code: ErrorCode.SHUTTING_DOWN });
    expect(process.listenerCount('SIGTERM')).toBe(before);
    off();
  });
});
