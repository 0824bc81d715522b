// The engine's conformance suite: every backend runs every test here.
// A backend that is not available on this machine is reported as skipped,
// with the reason, never as passed.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { listenRaw, type CloseInfo, type EngineOptions, type PeerAddress, type RawServer } from '../src/index.js';
import { tokenSlot, tokenThread } from '../src/layout.js';
import { backendCases } from './fixtures/backends.js';
import { FramedClient, frame, pattern, until } from './fixtures/framed-client.js';

interface Recorder {
  server: RawServer;
  opens: Array<{ conn: number; peer: PeerAddress }>;
  closes: Map<number, CloseInfo>;
  frames: Map<number, Buffer[]>;
  drains: number[];
}

const servers: RawServer[] = [];
const clients: FramedClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

async function connect(server: RawServer, host = '127.0.0.1'): Promise<FramedClient> {
  const c = await FramedClient.connect(server.port, host);
  clients.push(c);
  return c;
}

describe.each(backendCases)('engine conformance: $title', ({ name, available }) => {
  /** A server that echoes every frame and records every event. */
  function echo(opts: EngineOptions = {}, mode: { echo?: boolean; keep?: boolean } = {}): Recorder {
    const rec: Recorder = {
      server: undefined as unknown as RawServer,
      opens: [],
      closes: new Map(),
      frames: new Map(),
      drains: [],
    };
    rec.server = listenRaw(
      { backend: name, ...opts },
      {
        open(conn, peer) {
          rec.opens.push({ conn, peer });
        },
        frame(conn, data) {
          if (mode.keep) {
            let l = rec.frames.get(conn);
            if (!l) rec.frames.set(conn, (l = []));
            l.push(Buffer.from(data));
          }
          if (mode.echo !== false) rec.server.send(conn, data);
        },
        close(conn, info) {
          rec.closes.set(conn, info);
        },
        drain(conn) {
          rec.drains.push(conn);
        },
      },
    );
    servers.push(rec.server);
    return rec;
  }

  describe.skipIf(!available)('framing', () => {
    it('reports the backend it runs and an ephemeral port', () => {
      const { server } = echo();
      expect(server.backend).toBe(name);
      expect(server.port).toBeGreaterThan(0);
      expect(server.address).toBe('127.0.0.1');
    });

    it('reassembles a frame split at every byte boundary', async () => {
      const rec = echo({}, { keep: true });
      const payload = pattern(1, 37);
      const wire = frame(payload);
      const c = await connect(rec.server);
      // For every split point k, send wire[0..k) then wire[k..) as two writes.
      for (let k = 1; k < wire.length; k++) {
        c.sendRaw(wire.subarray(0, k));
        await new Promise((r) => setTimeout(r, 1));
        c.sendRaw(wire.subarray(k));
      }
      // And once one byte at a time.
      for (let k = 0; k < wire.length; k++) c.sendRaw(wire.subarray(k, k + 1));
      const n = wire.length;
      const got = await c.waitFrames(n);
      expect(got.length).toBe(n);
      for (const f of got) expect(f.equals(payload)).toBe(true);
    });

    it('delivers 1000 frames written in one write, in order', async () => {
      const rec = echo();
      const c = await connect(rec.server);
      const parts: Buffer[] = [];
      for (let i = 0; i < 1000; i++) parts.push(frame(pattern(i, i % 200)));
      c.sendRaw(Buffer.concat(parts));
      const got = await c.waitFrames(1000);
      expect(got.length).toBe(1000);
      for (let i = 0; i < 1000; i++) expect(got[i]!.equals(pattern(i, i % 200))).toBe(true);
    });

    it('passes zero-length frames', async () => {
      const rec = echo({}, { keep: true });
      const c = await connect(rec.server);
      c.sendRaw(Buffer.concat([frame(Buffer.alloc(0)), frame(Buffer.from('x')), frame(Buffer.alloc(0))]));
      const got = await c.waitFrames(3);
      expect(got.map((f) => f.length)).toEqual([0, 1, 0]);
      const conn = rec.opens[0]!.conn;
      expect(rec.frames.get(conn)!.map((f) => f.length)).toEqual([0, 1, 0]);
    });

    it('passes a frame of exactly maxFrameBytes (default 16 MiB) and frames larger than the ring', async () => {
      const rec = echo({ ringBytes: 64 * 1024 });
      const c = await connect(rec.server);
      const big = pattern(7, 16 * 1024 * 1024);
      const mid = pattern(8, 100_000); // above the ring's inline limit (16 KiB)
      const small = pattern(9, 10);
      c.sendRaw(Buffer.concat([frame(small), frame(mid), frame(big), frame(small)]));
      const got = await c.waitFrames(4, 60_000);
      expect(got[0]!.equals(small)).toBe(true);
      expect(got[1]!.equals(mid)).toBe(true);
      expect(got[2]!.length).toBe(big.length);
      expect(got[2]!.equals(big)).toBe(true);
      expect(got[3]!.equals(small)).toBe(true);
    });

    it('closes only the connection that announces a frame over maxFrameBytes, with the reason', async () => {
      const rec = echo({ maxFrameBytes: 1000 }, { keep: true });
      const bad = await connect(rec.server);
      const good = await connect(rec.server);
      good.send(pattern(1, 1000));
      await good.waitFrames(1);
      bad.sendRaw(Buffer.concat([frame(pattern(2, 10)), frame(pattern(3, 1001))]));
      await bad.waitClosed();
      await until(() => rec.closes.size === 1, 5000, 'close event');
      const [badConn, info] = [...rec.closes.entries()][0]!;
      // The frame before the oversize one still reached JS, and nothing after it.
      expect(rec.frames.get(badConn)!.map((f) => f.length)).toEqual([10]);
      expect(info.reason).toBe('frame-too-large');
      expect(info.detail).toBe(1001);
      expect(info.message).toMatch(/1001.*maxFrameBytes/);
      // The other connection is untouched.
      good.send(pattern(4, 500));
      const got = await good.waitFrames(2);
      expect(got[1]!.equals(pattern(4, 500))).toBe(true);
      expect(good.ended).toBe(false);
    });
  });

  describe.skipIf(!available)('too-large frames', () => {
    it('writes tooLargeFrame to a connection that announces a frame over maxFrameBytes, then closes it with the reason', async () => {
      const rec = echo({ maxFrameBytes: 1000, tooLargeFrame: frame(Buffer.from('bye: too large')) }, { echo: false, keep: true });
      const bad = await connect(rec.server);
      const good = await connect(rec.server);
      // The too-large frame's bytes keep coming (200 KB): they are not read.
      bad.sendRaw(Buffer.concat([frame(pattern(2, 10)), frame(pattern(3, 200_000))]));
      await bad.waitClosed();
      expect((await bad.waitFrames(1)).map(String)).toEqual(['bye: too large']);
      await until(() => rec.closes.size === 1, 5000, 'close event');
      const [badConn, info] = [...rec.closes.entries()][0]!;
      expect(rec.frames.get(badConn)!.map((f) => f.length)).toEqual([10]);
      expect([info.reason, info.detail]).toEqual(['frame-too-large', 200_000]);
      expect(rec.server.stats().connections.closed['frame-too-large']).toBe(1);
      expect(rec.server.stats().pendingSendBytes).toBe(0);
      good.send(Buffer.from('still here'));
      await until(() => (rec.frames.get(rec.opens[1]!.conn)?.length ?? 0) === 1, 5000, 'good frame');
      expect(good.ended).toBe(false);
    });
  });

  describe.skipIf(!available)('many connections', () => {
    it('echoes 100 frames on each of 1000 concurrent connections, every byte verified', async () => {
      const rec = echo({ ioThreads: 2 });
      const conns = await Promise.all(Array.from({ length: 1000 }, () => connect(rec.server)));
      for (let j = 0; j < conns.length; j++) {
        const parts: Buffer[] = [];
        for (let i = 0; i < 100; i++) parts.push(frame(pattern(j * 1000 + i, 16 + ((i * 7 + j) % 120))));
        conns[j]!.sendRaw(Buffer.concat(parts));
      }
      await Promise.all(conns.map((c) => c.waitFrames(100, 60_000)));
      let bad = 0;
      for (let j = 0; j < conns.length; j++) {
        const got = conns[j]!.frames;
        if (got.length !== 100) bad++;
        for (let i = 0; i < 100; i++) {
          if (!got[i]?.equals(pattern(j * 1000 + i, 16 + ((i * 7 + j) % 120)))) bad++;
        }
      }
      expect(bad).toBe(0);
      expect(rec.opens.length).toBe(1000);
      const st = rec.server.stats();
      expect(st.connections.accepted).toBe(1000);
      expect(st.connections.open).toBe(1000);
      expect(st.connections.peak).toBe(1000);
      expect(st.framesIn).toBe(100_000);
      expect(st.ioThreads).toBe(2);
      // Accepted connections are spread over both I/O threads.
      const threads = new Set(rec.opens.map((o) => tokenThread(o.conn)));
      expect(threads.size).toBe(2);
    });

    it('sends many frames to many connections from one batch', async () => {
      const rec = echo({}, { echo: false });
      const conns = await Promise.all(Array.from({ length: 50 }, () => connect(rec.server)));
      await until(() => rec.opens.length === 50, 5000, 'opens');
      // One synchronous burst: 50 connections x 20 frames, flushed as one batch.
      for (let i = 0; i < 20; i++) {
        for (const o of rec.opens) expect(rec.server.send(o.conn, pattern(o.conn + i, 64))).toBe(true);
      }
      await Promise.all(conns.map((c) => c.waitFrames(20)));
      const byPort = new Map(rec.opens.map((o) => [o.peer.port, o.conn]));
      for (const c of conns) {
        const conn = byPort.get(c.socket.localPort!)!;
        for (let i = 0; i < 20; i++) expect(c.frames[i]!.equals(pattern(conn + i, 64))).toBe(true);
      }
    });

    it('gathers consecutive sends to one connection into one entry: every byte in order, whatever the lengths', async () => {
      const rec = echo({}, { echo: false });
      const [c1, c2] = [await connect(rec.server), await connect(rec.server)];
      await until(() => rec.opens.length === 2, 5000, 'opens');
      const byPort = new Map(rec.opens.map((o) => [o.peer.port, o.conn]));
      const a = byPort.get(c1.socket.localPort!)!;
      const b = byPort.get(c2.socket.localPort!)!;
      const before = rec.server.stats().sendsOut;
      // One synchronous burst, so one batch: 21 frames to a (lengths 0-20,
      // so most land unaligned; every third one through write() already
      // framed), 5 to b, 3 more to a: three entries.
      const wantA: Buffer[] = [];
      const wantB: Buffer[] = [];
      for (let i = 0; i <= 20; i++) {
        const p = pattern(i, i);
        wantA.push(p);
        expect(i % 3 === 0 ? rec.server.write(a, frame(p)) : rec.server.send(a, p)).toBe(true);
      }
      for (let i = 0; i < 5; i++) {
        const p = pattern(100 + i, 7 + i);
        wantB.push(p);
        expect(rec.server.send(b, p)).toBe(true);
      }
      for (let i = 0; i < 3; i++) {
        const p = pattern(200 + i, 13);
        wantA.push(p);
        expect(rec.server.send(a, p)).toBe(true);
      }
      await Promise.all([c1.waitFrames(wantA.length), c2.waitFrames(wantB.length)]);
      expect(c1.frames.map((f) => f.toString('hex'))).toEqual(wantA.map((f) => f.toString('hex')));
      expect(c2.frames.map((f) => f.toString('hex'))).toEqual(wantB.map((f) => f.toString('hex')));
      await until(() => rec.server.stats().sendsOut - before === 3, 5000, 'three send entries');

      // Past 1 MiB the entry ends and the next one begins; a close ends it too,
      // and sends after a close are refused, not gathered into what went before.
      const big = [pattern(1, 700_000), pattern(2, 700_000), pattern(3, 5)];
      const mark = rec.server.stats().sendsOut;
      for (const p of big) expect(rec.server.send(a, p)).toBe(true);
      expect(rec.server.closeConnection(a)).toBe(true);
      expect(rec.server.send(a, pattern(4, 5))).toBe(false);
      await c1.waitClosed();
      const got = c1.frames.slice(wantA.length);
      expect(got.length).toBe(3);
      for (let i = 0; i < 3; i++) expect(got[i]!.equals(big[i]!)).toBe(true);
      expect(rec.server.stats().sendsOut - mark).toBe(2);
    });
  });

  describe.skipIf(!available)('backpressure', () => {
    it('loses nothing and keeps order when a tiny ring meets a slow consumer', async () => {
      let seen = 0;
      const rec: { server?: RawServer } = {};
      const server = listenRaw(
        { backend: name, ringBytes: 4096, recvBufferBytes: 4096, recvBufferCount: 4 },
        {
          frame(conn, data) {
            // A slow consumer: burn ~20 us per frame.
            const end = process.hrtime.bigint() + 20_000n;
            while (process.hrtime.bigint() < end);
            seen++;
            rec.server!.send(conn, data);
          },
        },
      );
      rec.server = server;
      servers.push(server);
      const c = await connect(server);
      const N = 6000;
      const parts: Buffer[] = [];
      // Mixed sizes, some above the 4 KiB ring's inline limit (1008 bytes).
      for (let i = 0; i < N; i++) parts.push(frame(pattern(i, i % 97 === 0 ? 3000 : (i * 13) % 300)));
      c.sendRaw(Buffer.concat(parts));
      const got = await c.waitFrames(N, 60_000);
      expect(seen).toBe(N);
      expect(got.length).toBe(N);
      // The ring really filled up: this test went through the stall path.
      const st = server.stats();
      expect(st.ring.stalls).toBeGreaterThan(0);
      expect(st.framesIn).toBe(N);
      let bad = 0;
      for (let i = 0; i < N; i++) if (!got[i]!.equals(pattern(i, i % 97 === 0 ? 3000 : (i * 13) % 300))) bad++;
      expect(bad).toBe(0);
    });

    it('pauses and resumes reading one connection without affecting another', async () => {
      const rec = echo({}, { keep: true });
      const a = await connect(rec.server);
      const b = await connect(rec.server);
      await until(() => rec.opens.length === 2, 5000, 'opens');
      const byPort = new Map(rec.opens.map((o) => [o.peer.port, o.conn]));
      const ta = byPort.get(a.socket.localPort!)!;
      const tb = byPort.get(b.socket.localPort!)!;
      expect(rec.server.pauseReading(ta)).toBe(true);
      rec.server.flush();
      await new Promise((r) => setTimeout(r, 20));
      const big = pattern(1, 1000);
      for (let i = 0; i < 200; i++) a.send(big);
      b.send(Buffer.from('b still flows'));
      await b.waitFrames(1);
      await new Promise((r) => setTimeout(r, 100));
      expect(rec.frames.get(ta)?.length ?? 0).toBe(0);
      expect(rec.server.resumeReading(ta)).toBe(true);
      const got = await a.waitFrames(200);
      expect(got.length).toBe(200);
      expect(got.every((f) => f.equals(big))).toBe(true);
      expect(rec.frames.get(ta)!.length).toBe(200);
    });

    it('reports pending send bytes and a drain event for a peer that stops reading', async () => {
      const rec = echo({ sendHighWaterBytes: 256 * 1024, sendLowWaterBytes: 0 }, { echo: false });
      const c = await connect(rec.server);
      c.socket.pause();
      await until(() => rec.opens.length === 1, 5000, 'open');
      const conn = rec.opens[0]!.conn;
      const chunk = pattern(5, 64 * 1024);
      for (let i = 0; i < 128; i++) rec.server.send(conn, chunk); // 8 MiB
      rec.server.flush();
      await until(() => rec.server.pendingBytes(conn) > 0, 5000, 'pending bytes');
      expect(rec.server.pendingBytes(conn)).toBeGreaterThan(256 * 1024);
      // The engine-wide gauge counts what the I/O thread holds: at most what was sent.
      await until(() => rec.server.stats().pendingSendBytes > 0, 5000, 'stats().pendingSendBytes');
      expect(rec.server.stats().pendingSendBytes).toBeLessThanOrEqual(128 * (64 * 1024 + 4));
      expect(rec.drains.length).toBe(0);
      c.socket.resume();
      const got = await c.waitFrames(128, 30_000);
      expect(got.every((f) => f.equals(chunk))).toBe(true);
      await until(() => rec.drains.length === 1, 5000, 'drain');
      expect(rec.drains[0]).toBe(conn);
      expect(rec.server.pendingBytes(conn)).toBe(0);
      expect(rec.server.stats().pendingSendBytes).toBe(0);
    });

    it('drops the unsent bytes of a connection closed at once from stats().pendingSendBytes', async () => {
      const rec = echo({}, { echo: false });
      const c = await connect(rec.server);
      c.socket.pause();
      await until(() => rec.opens.length === 1, 5000, 'open');
      const conn = rec.opens[0]!.conn;
      const chunk = pattern(6, 64 * 1024);
      for (let i = 0; i < 128; i++) rec.server.send(conn, chunk); // 8 MiB: far more than the socket buffers take
      rec.server.flush();
      await until(() => rec.server.stats().pendingSendBytes > 1024 * 1024, 5000, 'bytes held');
      // More while that send is in flight: these wait in the connection's queue.
      const inFlight = rec.server.stats().pendingSendBytes;
      for (let i = 0; i < 16; i++) rec.server.send(conn, chunk);
      rec.server.flush();
      await until(() => rec.server.stats().pendingSendBytes > inFlight, 5000, 'queued behind the send in flight');
      rec.server.closeConnection(conn, { flush: false });
      await until(() => rec.closes.has(conn), 5000, 'close');
      await until(() => rec.server.stats().pendingSendBytes === 0, 5000, 'pendingSendBytes back to 0');
    });
    it('owes a drain event to every send that the caller saw take pending bytes above the mark, however fast the peer reads', async () => {
      // The mark is armed in the send call itself: an I/O thread that first
      // wrote the earlier bytes must not find pending below the mark and skip it.
      const high = 48 * 1024;
      const rec = echo({ sendHighWaterBytes: high, sendLowWaterBytes: 0 }, { echo: false });
      const c = await connect(rec.server);
      await until(() => rec.opens.length === 1, 5000, 'open');
      const conn = rec.opens[0]!.conn;
      const chunk = pattern(9, 40 * 1024);
      let seen = 0;
      for (let round = 0; round < 300; round++) {
        const before = rec.drains.length;
        rec.server.send(conn, chunk);
        if (round % 31 !== 0) {
          rec.server.flush();
          // Land the second send at a different moment of the I/O thread's
          // handling of the first each round (5 to 150 us later).  An I/O
          // thread that is quick enough writes the first chunk before the
          // second arrives in every such round (a CI run at c52336b saw no
          // round above the mark in 300), so every 31st round hands both
          // over in one flush, above the mark whatever the thread's speed.
          const until_ = process.hrtime.bigint() + BigInt((round % 31) * 5000);
          while (process.hrtime.bigint() < until_);
        }
        rec.server.send(conn, chunk);
        const pending = rec.server.pendingBytes(conn); // flushes the second chunk
        await c.waitFrames(2 * (round + 1), 10_000);
        await until(() => rec.server.pendingBytes(conn) === 0, 5000, 'all written');
        if (pending > high) {
          seen++;
          await until(() => rec.drains.length > before, 5000, `the drain owed in round ${round} (pending was ${pending})`);
        }
      }
      expect(seen).toBeGreaterThan(0);
      expect(rec.drains.every((d) => d === conn)).toBe(true);
    });
  });

  describe.skipIf(!available)('closing', () => {
    it('client closing mid-frame: earlier frames delivered, then one close, no partial frame', async () => {
      const rec = echo({}, { keep: true });
      const c = await connect(rec.server);
      const whole = frame(pattern(1, 100));
      const half = frame(pattern(2, 100)).subarray(0, 50);
      c.sendRaw(Buffer.concat([whole, half]));
      await until(() => (rec.frames.values().next().value?.length ?? 0) === 1, 5000, 'first frame');
      c.socket.end();
      await until(() => rec.closes.size === 1, 5000, 'close');
      const [conn, info] = [...rec.closes.entries()][0]!;
      expect(['peer', 'error']).toContain(info.reason);
      expect(rec.frames.get(conn)!.length).toBe(1);
      expect(rec.server.isOpen(conn)).toBe(false);
    });

    it('server closing a connection mid-frame closes it at once (flush: false)', async () => {
      const rec = echo({}, { echo: false });
      const c = await connect(rec.server);
      await until(() => rec.opens.length === 1, 5000, 'open');
      const conn = rec.opens[0]!.conn;
      c.sendRaw(frame(pattern(3, 100)).subarray(0, 30));
      expect(rec.server.closeConnection(conn, { flush: false })).toBe(true);
      await c.waitClosed();
      await until(() => rec.closes.size === 1, 5000, 'close');
      expect(rec.closes.get(conn)!.reason).toBe('local');
    });

    it('close after flush writes everything queued before it', async () => {
      const rec = echo({}, { echo: false });
      const c = await connect(rec.server);
      await until(() => rec.opens.length === 1, 5000, 'open');
      const conn = rec.opens[0]!.conn;
      const chunk = pattern(4, 32 * 1024);
      for (let i = 0; i < 64; i++) rec.server.send(conn, chunk); // 2 MiB
      expect(rec.server.closeConnection(conn)).toBe(true);
      expect(rec.server.send(conn, chunk)).toBe(false); // closing: no new sends
      await c.waitClosed();
      expect(c.frames.length).toBe(64);
      expect(c.frames.every((f) => f.equals(chunk))).toBe(true);
      await until(() => rec.closes.size === 1, 5000, 'close');
      expect(rec.closes.get(conn)!.reason).toBe('local-flushed');
    });

    it('treats stale tokens as harmless no-ops, even when the slot is reused', async () => {
      const rec = echo({ ioThreads: 1 }, { echo: false });
      const a = await connect(rec.server);
      await until(() => rec.opens.length === 1, 5000, 'open a');
      const ta = rec.opens[0]!.conn;
      a.destroy();
      await until(() => rec.closes.has(ta), 5000, 'close a');
      // Give the I/O thread a moment to recycle the slot, then reconnect.
      await new Promise((r) => setTimeout(r, 20));
      const b = await connect(rec.server);
      await until(() => rec.opens.length === 2, 5000, 'open b');
      const tb = rec.opens[1]!.conn;
      expect(tokenSlot(tb)).toBe(tokenSlot(ta));
      expect(tb).not.toBe(ta);
      expect(rec.server.isOpen(ta)).toBe(false);
      expect(rec.server.send(ta, Buffer.from('stale'))).toBe(false);
      expect(rec.server.closeConnection(ta)).toBe(false);
      expect(rec.server.pendingBytes(ta)).toBe(-1);
      // Numbers that are not tokens never reach a connection, including
      // ones whose low bits and quotient match tb's (tb + 2^58 aliases tb
      // under 32-bit decoding, if it is representable at all).
      for (const bogus of [-tb, tb + 0.5, tb + 2 ** 58, tb * 2 ** 32, Number.NaN, Infinity, 2 ** 53]) {
        expect(rec.server.isOpen(bogus), String(bogus)).toBe(false);
        expect(rec.server.send(bogus, Buffer.from('bogus'))).toBe(false);
      }
      expect(rec.server.send(tb, Buffer.from('fresh'))).toBe(true);
      expect(rec.server.stats().connections.closed.error + rec.server.stats().connections.closed.peer).toBe(1);
      const got = await b.waitFrames(1);
      expect(got.map((f) => f.toString())).toEqual(['fresh']);
      await new Promise((r) => setTimeout(r, 50));
      expect(b.frames.length).toBe(1);
      expect(b.ended).toBe(false);
    });

    it('server close gives every connection a server-closing close event and resolves', async () => {
      const rec = echo();
      const cs = await Promise.all(Array.from({ length: 10 }, () => connect(rec.server)));
      await until(() => rec.opens.length === 10, 5000, 'opens');
      servers.splice(servers.indexOf(rec.server), 1);
      await rec.server.close();
      expect(rec.closes.size).toBe(10);
      for (const info of rec.closes.values()) expect(info.reason).toBe('server-closing');
      const st = rec.server.stats();
      expect(st.connections.closed['server-closing']).toBe(10);
      expect(st.connections.open).toBe(0);
      await Promise.all(cs.map((c) => c.waitClosed()));
      expect(() => rec.server.flush()).not.toThrow();
      expect(rec.server.send(rec.opens[0]!.conn, Buffer.from('x'))).toBe(false);
    });

    it('sees the end of a peer whose frame and FIN arrive together (no edge of their own for the EOF)', async () => {
      const frames = new Map<number, string[]>();
      const closes = new Map<number, CloseInfo>();
      const opens: number[] = [];
      const server = listenRaw(
        { backend: name },
        {
          // Not read until both the frame and the FIN are there.
          open: (conn) => void (opens.push(conn), server.pauseReading(conn)),
          frame: (conn, data) => void frames.set(conn, [...(frames.get(conn) ?? []), data.toString()]),
          close: (conn, info) => void closes.set(conn, info),
        },
      );
      servers.push(server);
      const n = 20;
      const cs = await Promise.all(Array.from({ length: n }, () => connect(server)));
      await until(() => opens.length === n, 5000, 'opens');
      for (const c of cs) c.socket.end(frame(Buffer.from('last words')));
      await new Promise((r) => setTimeout(r, 200));
      for (const conn of opens) server.resumeReading(conn);
      // (epoll read the data, took the short read for "drained" and never saw the FIN: the
      // connections stayed open for good, and with maxConnectionsPerAddress locked the peer out.)
      await until(() => closes.size === n, 5000, 'every close');
      expect([...closes.values()].every((i) => i.reason === 'peer')).toBe(true);
      expect(opens.map((conn) => frames.get(conn))).toEqual(Array(n).fill(['last words']));
      expect(server.stats().connections.open).toBe(0);
      await Promise.all(cs.map((c) => c.waitClosed()));
    });

    it('close() frees the port at once: new connections are refused and a new server can listen on it', async () => {
      for (const clientsBefore of [0, 3]) {
        const rec = echo();
        const port = rec.server.port;
        const cs = await Promise.all(Array.from({ length: clientsBefore }, () => connect(rec.server)));
        await until(() => rec.opens.length === clientsBefore, 5000, 'opens');
        servers.splice(servers.indexOf(rec.server), 1);
        await rec.server.close();
        await Promise.all(cs.map((c) => c.waitClosed()));
        // (io_uring's accept request held the listening socket until the
        // engine was garbage collected: connects were taken and never
        // answered, and this listen failed with EADDRINUSE.)
        await expect(FramedClient.connect(port, '127.0.0.1')).rejects.toThrow(/ECONNREFUSED/);
        const again = listenRaw({ backend: name, port }, {});
        servers.push(again);
        expect(again.port).toBe(port);
      }
    });
  });

  describe.skipIf(!available)('handler errors', () => {
    it('a throwing handler goes to the error handler; the rest of its batch and every later event still arrive', async () => {
      const errors: Array<{ message: string; conn: number | null }> = [];
      const opens: number[] = [];
      let throwInBatchEnd = false;
      const server: RawServer = listenRaw(
        { backend: name },
        {
          open(conn) {
            opens.push(conn);
          },
          frame(conn, data) {
            const text = data.toString();
            if (text === 'boom') throw new Error('deliberate handler error');
            if (text === 'boom in batchEnd') throwInBatchEnd = true;
            server.send(conn, data);
          },
          batchEnd() {
            if (throwInBatchEnd) {
              throwInBatchEnd = false;
              throw new Error('deliberate batchEnd error');
            }
          },
          error(error, conn) {
            errors.push({ message: (error as Error).message, conn });
          },
        },
      );
      servers.push(server);
      const a = await connect(server);
      // One write, so the frames after the throw come in the same batch.
      a.sendRaw(Buffer.concat([frame(Buffer.from('a')), frame(Buffer.from('boom')), frame(Buffer.from('c'))]));
      expect((await a.waitFrames(2)).map(String)).toEqual(['a', 'c']);
      expect(errors).toEqual([{ message: 'deliberate handler error', conn: opens[0] }]);
      // Later events, on this connection and a new one, still arrive.
      const b = await connect(server);
      b.send(Buffer.from('boom in batchEnd'));
      expect((await b.waitFrames(1)).map(String)).toEqual(['boom in batchEnd']);
      await until(() => errors.length === 2);
      expect(errors[1]).toEqual({ message: 'deliberate batchEnd error', conn: null });
      a.send(Buffer.from('again'));
      expect((await a.waitFrames(3)).map(String)).toEqual(['a', 'c', 'again']);
      expect(opens).toHaveLength(2);
      await server.close();
    });

    it.each(['none', 'error-throws'])('with error handler %s, the error surfaces as an uncaught exception (exit 1), never swallowed', (mode) => {
      const r = spawnSync(process.execPath, [fileURLToPath(new URL('./fixtures/handler-throws.mjs', import.meta.url)), mode], {
        env: { ...process.env, WW_TEST_BACKEND: name },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(r.error).toBeUndefined();
      expect(r.signal).toBeNull();
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(mode === 'none' ? /Error: deliberate handler error/ : /Error: the error handler failed too \(deliberate handler error\)/);
    });

    it('send() and write() refuse what is not bytes, with a TypeError', async () => {
      const rec = echo();
      const c = await connect(rec.server);
      c.send(Buffer.from('x'));
      await c.waitFrames(1);
      const conn = rec.opens[0]!.conn;
      expect(() => rec.server.send(conn, 'str' as never)).toThrow(/send\(conn, payload\): payload must be a Buffer or Uint8Array, got string/);
      expect(() => rec.server.send(conn, new Uint16Array(2) as never)).toThrow(/got Uint16Array/);
      expect(() => rec.server.send(conn, [1, 2] as never)).toThrow(/got an array/);
      expect(() => rec.server.write(conn, null as never)).toThrow(/write\(conn, framed\): framed must be a Buffer or Uint8Array, got null/);
      // Nothing reached the wire: the connection still frames correctly.
      c.send(Buffer.from('y'));
      expect((await c.waitFrames(2)).map(String)).toEqual(['x', 'y']);
    });
  });

  describe.skipIf(!available)('addresses', () => {
    it('listens and echoes on IPv6 (::1) and reports IPv6 peers', async () => {
      const rec = echo({ host: '::1' });
      expect(rec.server.family).toBe(6);
      expect(rec.server.address).toBe('::1');
      const c = await connect(rec.server, '::1');
      c.send(Buffer.from('over v6'));
      const got = await c.waitFrames(1);
      expect(got[0]!.toString()).toBe('over v6');
      expect(rec.opens[0]!.peer).toMatchObject({ address: '::1', family: 6 });
      expect(rec.opens[0]!.peer.port).toBe(c.socket.localPort);
    });

    it('fails to listen on a port in use with a clear error', () => {
      const rec = echo();
      expect(() => listenRaw({ backend: name, port: rec.server.port }, {})).toThrow(/listen 127\.0\.0\.1:\d+: Address already in use/);
    });
  });
});
