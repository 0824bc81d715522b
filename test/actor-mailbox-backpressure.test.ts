// A connection with more queued requests than mailboxLimit stops being read
// (TCP pushes back on that peer); it is read again when its mailbox drains.
// Nothing is dropped: every request is answered, in order.
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ErrorCode, FrameReader, MessageDecoder, MessageEncoder, Messages, type ProtocolError } from '../src/index.js';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';
import { waitFor } from './fixtures/wait.js';

useActorServers();

describe('actor mailbox limit', () => {
  it('pauses reading at the limit, resumes when drained, and loses nothing', async () => {
    const s = await startServer({ mailboxLimit: 4, maxTurnsPerConnection: 2 });
    const raw = s.raw;
    const calls: string[] = [];
    const pause = raw.pauseReading.bind(raw);
    const resume = raw.resumeReading.bind(raw);
    raw.pauseReading = (conn: number) => (calls.push('pause'), pause(conn));
    raw.resumeReading = (conn: number) => (calls.push('resume'), resume(conn));
    const c = await client(s);
    const other = await client(s);
    let maxPaused = 0;
    const watch = setInterval(() => (maxPaused = Math.max(maxPaused, s.stats().pausedConnections)), 1);
    const N = 200;
    const replies = Promise.all(Array.from({ length: N }, (_, i) => c.request('sleep', { ms: 2, value: i })));
    // Another connection is not held up by c's full mailbox.
    expect((await other.request('echo', 'free')).body).toBe('free');
    const got = (await replies).map((r) => r.body);
    clearInterval(watch);
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(calls.filter((x) => x === 'pause').length).toBeGreaterThan(0);
    expect(calls.filter((x) => x === 'resume').length).toBe(calls.filter((x) => x === 'pause').length);
    expect(maxPaused).toBe(1);
    expect(s.stats().pausedConnections).toBe(0);
  });

  it('answers requests above maxQueue with OVERLOADED in their place, and runs the rest in order', async () => {
    const s = await startServer({ maxQueue: 3, mailboxLimit: 1000, minWorkers: 1, maxWorkers: 1, maxTurnsPerConnection: 1 });
    const c = await client(s);
    const N = 40;
    const outcomes = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        c.request('sleep', { ms: 3, value: i }).then(
          (r) => ({ i, ok: r.body === i }),
          (e: ProtocolError) => ({ i, ok: false, code: e.code }),
        ),
      ),
    );
    const overloaded = outcomes.filter((o) => !o.ok);
    expect(overloaded.length).toBeGreaterThan(0);
    for (const o of overloaded) expect(o).toMatchObject({ code: ErrorCode.OVERLOADED });
    expect(outcomes.filter((o) => o.ok).length).toBeGreaterThan(0);
  });

  it('stops reading a client that does not read its answers, holds a bounded amount, and loses nothing when it reads again', async () => {
    const s = await startServer({});
    const sock = netConnect({ port: s.port, host: '127.0.0.1' });
    await once(sock, 'connect');
    sock.pause(); // reads nothing for now
    sock.on('error', () => {});
    const enc = new MessageEncoder();
    const body = Buffer.alloc(64 * 1024, 1);
    const N = 800; // 52 MB of answers
    for (let i = 1; i <= N; i++) sock.write(enc.encodePrefixed(Messages.request(i, 'echo', body)));
    await waitFor(() => s.stats().engine.pendingSendBytes > 0 && s.stats().requests > 0, 'answers stuck');
    await new Promise((r) => setTimeout(r, 1500));
    // Before, every request was read and answered into the engine's queue: 52 MB held here
    // (1.7 GB in a longer run). Now the server stops reading it once its answers pass
    // sendHighWaterBytes; what it holds is the answers of the requests it had already
    // taken (its mailbox, the ring, the I/O thread's read-ahead): 8-12 MB here.
    const st = s.stats();
    expect(st.requests).toBeLessThan(N);
    expect(st.engine.pendingSendBytes).toBeLessThan(20 * 1024 * 1024);
    // And it holds still.
    await new Promise((r) => setTimeout(r, 500));
    expect(s.stats().requests).toBe(st.requests);
    expect(s.stats().engine.pendingSendBytes).toBeLessThanOrEqual(st.engine.pendingSendBytes);
    // Reading again: every answer, in order.
    const dec = new MessageDecoder();
    const ids: number[] = [];
    const reader = new FrameReader((f) => ids.push(dec.decode(f).id));
    sock.on('data', (d) => reader.push(d));
    sock.resume();
    await waitFor(() => ids.length === N, 'every answer', 30_000);
    expect(ids).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    sock.destroy();
  });
});
