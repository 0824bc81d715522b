// Per-action histograms of handler run time and of wait time (from the
// request's arrival on the main thread to its handler's start), in stats()
// and as Prometheus histograms.  The `burn` handler is busy for a known time,
// so every bound asserted here follows from the clock, never from how fast
// the machine is.
import { BroadcastChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { TURN_TIME_BUCKETS_MS, type TimeHistogram, actorStatsToPrometheus } from '../src/index.js';
import { bucketOf, sharedClockMs } from '../src/actor/timing.js';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';
import { waitFor } from './fixtures/wait.js';

useActorServers();

const BURN_MS = 20;

/** Observations at or below `boundMs` (a bucket bound). */
function atOrBelow(h: TimeHistogram, boundMs: number): number {
  const i = h.buckets.indexOf(boundMs);
  if (i < 0) throw new Error(`${boundMs} is not a bucket bound`);
  return h.counts.slice(0, i + 1).reduce((a, b) => a + b, 0);
}

function expectWellFormed(h: TimeHistogram, count: number): void {
  expect(h.buckets).toEqual(TURN_TIME_BUCKETS_MS);
  expect(h.counts).toHaveLength(TURN_TIME_BUCKETS_MS.length + 1);
  expect(h.count).toBe(count);
  expect(h.counts.reduce((a, b) => a + b, 0)).toBe(count);
  expect(h.counts.every((n) => Number.isInteger(n) && n >= 0)).toBe(true);
  expect(h.sum).toBeGreaterThanOrEqual(0);
}

/** A label set as Prometheus writes it, unescaped. */
function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /(\w+)="((?:[^"\\]|\\.)*)"(,|$)/y;
  let end = 0;
  for (let m; (m = re.exec(text)); end = re.lastIndex) {
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  expect(end, `labels ${text}`).toBe(text.length);
  return out;
}

describe('turn time histograms per action', () => {
  it('bucketOf puts a time in the first bucket whose bound is at least that time, +Inf above the last', () => {
    const last = TURN_TIME_BUCKETS_MS.length;
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(TURN_TIME_BUCKETS_MS[0]!)).toBe(0);
    for (let i = 1; i < last; i++) {
      expect(bucketOf(TURN_TIME_BUCKETS_MS[i]!)).toBe(i);
      expect(bucketOf((TURN_TIME_BUCKETS_MS[i - 1]! + TURN_TIME_BUCKETS_MS[i]!) / 2)).toBe(i);
    }
    expect(bucketOf(TURN_TIME_BUCKETS_MS[last - 1]! + 0.001)).toBe(last);
    expect(bucketOf(Infinity)).toBe(last);
  });

  it('puts the run times of a handler busy for 20 ms in the buckets above 10 ms, and most quick ones at or below 1 ms', async () => {
    const s = await startServer();
    const c = await client(s);
    const n = 5;
    const m = 50;
    for (let i = 0; i < n; i++) expect((await c.request('burn', { ms: BURN_MS })).body).toBe(BURN_MS);
    await Promise.all(Array.from({ length: m }, (_, i) => c.request('echo', i)));
    const { burn, echo } = s.stats().actions;

    // The fields that were there before the histograms still are.
    expect(burn!.requests).toBe(n);
    expect(burn!.maxMs).toBeGreaterThanOrEqual(BURN_MS);
    expectWellFormed(burn!.runMs, n);
    expectWellFormed(burn!.waitMs, n);
    // Every run took at least BURN_MS: nothing at or below 10 ms.
    expect(atOrBelow(burn!.runMs, 10)).toBe(0);
    expect(burn!.runMs.sum).toBeGreaterThanOrEqual(n * BURN_MS);
    // One measurement behind all three: the sum is the mean times the count, and no run exceeds the longest.
    expect(burn!.runMs.sum).toBeCloseTo(burn!.meanMs * n, 6);
    expect(burn!.runMs.sum).toBeLessThanOrEqual(n * burn!.maxMs + 1e-6);

    expect(echo!.requests).toBe(m);
    expectWellFormed(echo!.runMs, m);
    expectWellFormed(echo!.waitMs, m);
    // Returning its argument takes microseconds; only a descheduled thread takes longer.
    expect(atOrBelow(echo!.runMs, 1)).toBeGreaterThanOrEqual(m / 2);
  });

  it('measures the wait from arrival: requests queued behind one busy worker waited for it, and the i-th to start for the i before it', async () => {
    const s = await startServer({ maxWorkers: 1 });
    const k = 4;
    let held = 0;
    const g = await client(s);
    const clients = await Promise.all(Array.from({ length: k }, () => client(s)));
    const gate = new BroadcastChannel('whirlwind-test-gate');
    try {
      // The only worker holds the gate's task until we open it.
      const waiting = new Promise<void>((resolve) => {
        gate.onmessage = (e: unknown) => {
          if ((e as { data: unknown }).data === 'waiting') resolve();
        };
      });
      const opened = g.request('gate');
      await waiting;
      const before = s.stats().requests;
      const burns = clients.map((c) => c.request('burn', { ms: BURN_MS }));
      // Every burn has arrived (they are counted when drained from the ring) before any can start.
      await waitFor(() => s.stats().requests === before + k, 'the burns to arrive');
      // They stay queued a while; how long is read on the clock the server uses.
      const arrived = sharedClockMs();
      await new Promise((r) => setTimeout(r, 50));
      held = sharedClockMs() - arrived;
      gate.postMessage('open');
      expect((await opened).body).toBe('opened');
      expect((await Promise.all(burns)).map((r) => r.body)).toEqual(Array(k).fill(BURN_MS));
    } finally {
      gate.close();
    }
    const burn = s.stats().actions.burn!;
    expectWellFormed(burn.waitMs, k);
    // Each arrived before `arrived` and started after the gate opened, `held`
    // ms later; one thread runs them one after the other, each busy BURN_MS:
    // the i-th to start (from 0) waited >= held + i * BURN_MS.  (2 ms of slack
    // for reading the shared clock in two threads.)
    expect(burn.waitMs.sum).toBeGreaterThanOrEqual(k * held + (BURN_MS * k * (k - 1)) / 2 - 2);
    // The last waited >= (k - 1) * BURN_MS = 60 ms: not every wait is at or below 50 ms.
    expect(atOrBelow(burn.waitMs, 50)).toBeLessThan(k);
  });

  it('keeps an action named __proto__ as an ordinary entry, without touching any prototype', async () => {
    const s = await startServer();
    const c = await client(s);
    expect((await c.request('__proto__')).body).toBe('proto');
    expect((await c.request('echo', 1)).body).toBe(1);
    const stats = s.stats();
    expect(Object.hasOwn(stats.actions, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(stats.actions)).toBe(Object.prototype);
    expect(stats.actions['__proto__']!.requests).toBe(1);
    expect(stats.actions['__proto__']!.runMs.count).toBe(1);
    expect(stats.actions.echo!.requests).toBe(1);
    expect(actorStatsToPrometheus(stats)).toContain('action="__proto__"');
  });

  it('renders them as Prometheus histograms: HELP and TYPE, cumulative buckets, +Inf equal to _count, labels escaped', async () => {
    const s = await startServer();
    const c = await client(s);
    const odd = 'odd "name" \\ here';
    for (let i = 0; i < 3; i++) await c.request('burn', { ms: 2 });
    await Promise.all(Array.from({ length: 7 }, (_, i) => c.request('echo', i)));
    expect((await c.request(odd)).body).toBe('odd');
    const stats = s.stats();
    expect(Object.keys(stats.actions).sort()).toEqual(['burn', 'echo', odd].sort());
    const text = actorStatsToPrometheus(stats, { extraLabels: { server: 'a"b\nc' } });
    const lines = text.trimEnd().split('\n');

    for (const [family, field] of [['whirlwind_actor_action_run_ms', 'runMs'], ['whirlwind_actor_action_wait_ms', 'waitMs']] as const) {
      const help = lines.findIndex((l) => l.startsWith(`# HELP ${family} `));
      const type = lines.indexOf(`# TYPE ${family} histogram`);
      expect(help, `HELP of ${family}`).toBeGreaterThanOrEqual(0);
      expect(type).toBe(help + 1);
      // The family's samples follow its TYPE line, together, and only its three kinds of sample.
      const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
      for (let i = type + 1; i < lines.length && !lines[i]!.startsWith('#'); i++) {
        const m = /^(\w+)\{(.*)\} (\S+)$/.exec(lines[i]!);
        expect(m, lines[i]).not.toBeNull();
        expect([`${family}_bucket`, `${family}_sum`, `${family}_count`]).toContain(m![1]);
        samples.push({ name: m![1]!, labels: parseLabels(m![2]!), value: Number(m![3]) });
      }
      expect(lines.filter((l) => l.startsWith(`${family}_`))).toHaveLength(samples.length);
      for (const [action, a] of Object.entries(stats.actions)) {
        const h = a[field];
        const mine = samples.filter((x) => x.labels.action === action);
        for (const x of mine) expect(x.labels).toMatchObject({ backend: s.backend, server: 'a"b\nc' });
        const buckets = mine.filter((x) => x.name === `${family}_bucket`);
        expect(buckets.map((x) => x.labels.le)).toEqual([...TURN_TIME_BUCKETS_MS.map(String), '+Inf']);
        // Cumulative: each bucket counts everything at or below its bound.
        let below = 0;
        buckets.forEach((x, i) => {
          below += h.counts[i]!;
          expect(x.value).toBe(below);
          if (i > 0) expect(x.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
        });
        const count = mine.find((x) => x.name === `${family}_count`)!.value;
        const sum = mine.find((x) => x.name === `${family}_sum`)!.value;
        expect(count).toBe(a.requests);
        expect(buckets.at(-1)!.value).toBe(count);
        expect(sum).toBe(h.sum);
      }
    }
    // The burns ran >= 2 ms each: nothing in their run buckets at or below 1 ms.
    expect(text).toMatch(/^whirlwind_actor_action_run_ms_bucket\{[^}]*action="burn"[^}]*le="1"\} 0$/m);
    expect(text).toMatch(/^whirlwind_actor_action_run_ms_bucket\{[^}]*action="burn"[^}]*le="\+Inf"\} 3$/m);
    expect(text).toContain('action="odd \\"name\\" \\\\ here"');
  });
});
