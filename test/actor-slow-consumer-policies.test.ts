// Slow consumers: a client that stops reading makes its unsent bytes pass
// sendHighWaterBytes; pushes to it then follow their policy (queue bounded
// by outboundBudgetBytes, drop-oldest, drop-new, close, coalesce) while
// replies are never dropped; when it reads again, held pushes follow in order.
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { type ActorServer, ErrorCode, FrameReader, Kind, MessageDecoder, type PushPolicy } from '../src/index.js';
import { startServer, useActorServers } from './fixtures/actor-server.js';
import { waitFor } from './fixtures/wait.js';

useActorServers();

const HIGH = 64 * 1024;
const BUDGET = 256 * 1024;
const PAD = 'x'.repeat(4000);

/** A client that does not read until told to; resolves with its connection token on the server. */
async function stalled(s: ActorServer): Promise<{ sock: Socket; conn: number; got: ReturnType<MessageDecoder['decode']>[]; read(): void }> {
  const before = new Set(s.connections());
  const sock = netConnect({ port: s.port, host: '127.0.0.1' });
  await once(sock, 'connect');
  await waitFor(() => s.connections().some((c) => !before.has(c)), 'server sees the connection');
  const conn = s.connections().find((c) => !before.has(c))!;
  sock.pause();
  const dec = new MessageDecoder();
  const got: ReturnType<MessageDecoder['decode']>[] = [];
  const reader = new FrameReader((f) => got.push(dec.decode(f)));
  return { sock, conn, got, read: () => (sock.on('data', (d) => reader.push(d)), sock.resume()) };
}

/**
 * Pushes (policy drop-new) until the server calls the connection a slow
 * consumer, then `extra` pushes with `policy`, all in one go (no drain can
 * come in between).  Returns the pushes' count (their seq runs 0..count-1).
 */
async function flood(s: ActorServer, conn: number, policy: PushPolicy, extra: number, key?: string): Promise<number> {
  let seq = 0;
  for (let round = 0; round < 2000 && s.stats().slowConsumers === 0; round++) {
    for (let i = 0; i < 16; i++) s.push(conn, 't', { seq: seq++, pad: PAD }, { policy: 'drop-new' });
    await new Promise((r) => setImmediate(r));
  }
  expect(s.stats().slowConsumers).toBe(1);
  for (let i = 0; i < extra; i++) s.push(conn, 't', { seq: seq++, pad: PAD }, { policy, coalesceKey: key });
  return seq;
}

const opts = { sendHighWaterBytes: HIGH, sendLowWaterBytes: HIGH / 4, outboundBudgetBytes: BUDGET };

// On win32 (the Wine pass) a paused node:net client does not push back the
// way it does on Linux: with the client paused, 2000 rounds of 16 x 4 KB
// pushes (128 MB) went out in about 0.6 s and the server's unsent bytes kept
// falling back under sendLowWaterBytes, so the connection was only now and
// then a slow consumer (3 of 4 runs of this file under Wine failed one or two
// cases at the flood's check).  The data keeps flowing into the client
// process, so there is no slow consumer to test; the policies themselves
// are platform-independent TypeScript.
const pausedClientPushesBack = process.platform !== 'win32';
const title = pausedClientPushesBack
  ? 'actor slow consumers'
  : 'actor slow consumers (skipped on win32: a paused node:net client there does not hold back the server, see above)';

describe.skipIf(!pausedClientPushesBack)(title, () => {
  it('drop-new: drops pushes while the client is slow, keeps the engine backlog near the high-water mark', async () => {
    const s = await startServer(opts);
    const c = await stalled(s);
    await flood(s, c.conn, 'drop-new', 500);
    const st = s.stats();
    expect(st.pushDrops.dropNew).toBeGreaterThanOrEqual(500);
    expect(st.heldPushBytes).toBe(0);
    expect(s.raw.pendingBytes(c.conn)).toBeLessThan(HIGH + HIGH / 4 + 2 * 4096 + 4100);
    c.sock.destroy();
  });

  it('queue: holds up to outboundBudgetBytes, then closes the connection with GOAWAY OVERLOADED', async () => {
    const s = await startServer(opts);
    const c = await stalled(s);
    await flood(s, c.conn, 'queue', 10);
    expect(s.stats().heldPushBytes).toBeGreaterThan(0);
    expect(s.stats().heldPushBytes).toBeLessThanOrEqual(BUDGET);
    for (let i = 0; i < 100; i++) s.push(c.conn, 't', { pad: PAD }, { policy: 'queue' });
    expect(s.stats().pushDrops.closed).toBe(1);
    expect(s.stats().heldPushBytes).toBe(0);
    c.read();
    await once(c.sock, 'close');
    expect(c.got.at(-1)).toMatchObject({ kind: Kind.GOAWAY, code: ErrorCode.OVERLOADED });
  });

  it('drop-oldest: keeps the newest pushes within the budget and delivers them, in order, once the client reads', async () => {
    const s = await startServer(opts);
    const c = await stalled(s);
    const total = await flood(s, c.conn, 'drop-oldest', 200);
    expect(s.stats().pushDrops.dropOldest).toBeGreaterThan(0);
    expect(s.stats().heldPushBytes).toBeLessThanOrEqual(BUDGET);
    c.read();
    await waitFor(() => (c.got.at(-1)?.body as { seq?: number } | undefined)?.seq === total - 1, 'the newest push', 10_000);
    const seqs = c.got.map((m) => (m.body as { seq: number }).seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    expect(seqs.length).toBeLessThan(total);
    await waitFor(() => s.stats().heldPushBytes === 0 && s.stats().slowConsumers === 0, 'caught up');
  });

  it('coalesce: a newer push with the same key replaces the held one, so the client gets the latest state', async () => {
    const s = await startServer(opts);
    const c = await stalled(s);
    const total = await flood(s, c.conn, 'coalesce', 300, 'price');
    expect(s.stats().pushDrops.coalesced).toBeGreaterThanOrEqual(299);
    expect(s.stats().heldPushBytes).toBeLessThan(8192);
    c.read();
    await waitFor(() => (c.got.at(-1)?.body as { seq?: number } | undefined)?.seq === total - 1, 'the latest value', 10_000);
  });

  it('close: closes a slow consumer at its first push past the mark', async () => {
    const s = await startServer(opts);
    const c = await stalled(s);
    await flood(s, c.conn, 'close', 1);
    expect(s.stats().pushDrops.closed).toBe(1);
    c.read();
    await once(c.sock, 'close');
    expect(c.got.filter((m) => m.kind === Kind.GOAWAY)).toEqual([expect.objectContaining({ code: ErrorCode.OVERLOADED })]);
  });
});
