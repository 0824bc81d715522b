// Buffer ring exhaustion: many connections send at once into a provided
// buffer ring far smaller than the number of connections, so the kernel runs
// out of buffers (each starved recv ends with -ENOBUFS) again and again.
// Every byte must still arrive, in order, and receiving must resume.  Runs
// with incrementally consumed buffers (IOU_PBUF_RING_INC, kernel 6.12; the
// default where the kernel has it) and with classic whole-buffer ones
// (WHIRLWIND_IO_URING_PBUF_INC=0, what older kernels get).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listenRaw, type RawServer } from '../src/index.js';
import { FramedClient, frame, pattern } from './fixtures/framed-client.js';
import { uringAvailable, uringTitle } from './fixtures/io-uring.js';

const servers: RawServer[] = [];
const clients: FramedClient[] = [];

afterEach(async () => {
  delete process.env.WHIRLWIND_IO_URING_PBUF_INC;
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

describe.skipIf(!uringAvailable).each([
  { mode: 'incremental buffers', inc: '1' },
  { mode: 'classic buffers', inc: '0' },
])(uringTitle('io_uring buffer ring exhaustion, $mode'), ({ inc }) => {
  beforeEach(() => {
    process.env.WHIRLWIND_IO_URING_PBUF_INC = inc;
  });

  it('loses nothing when 200 connections send at once into 2 buffers of 256 bytes', async () => {
    const server = listenRaw(
      { backend: 'io_uring', recvBufferCount: 2, recvBufferBytes: 256 },
      { frame: (conn, data) => server.send(conn, data) },
    );
    servers.push(server);
    expect(server.backend).toBe('io_uring');
    const N = 200;
    const FRAMES = 20;
    const conns: FramedClient[] = [];
    for (let i = 0; i < N; i++) {
      const c = await FramedClient.connect(server.port);
      clients.push(c);
      conns.push(c);
    }
    // Everyone writes everything at once: ~20 KB per connection, 4 MB in all,
    // through 512 bytes of receive buffers.
    for (let i = 0; i < N; i++) {
      const parts: Buffer[] = [];
      for (let k = 0; k < FRAMES; k++) parts.push(frame(pattern(i * 1000 + k, 100 + ((i + k) % 1000))));
      conns[i]!.sendRaw(Buffer.concat(parts));
    }
    await Promise.all(conns.map((c) => c.waitFrames(FRAMES)));
    for (let i = 0; i < N; i++) {
      const got = conns[i]!.frames;
      expect(got.length).toBe(FRAMES);
      for (let k = 0; k < FRAMES; k++) {
        expect(got[k]!.equals(pattern(i * 1000 + k, 100 + ((i + k) % 1000)))).toBe(true);
      }
    }
    const st = server.stats();
    expect(st.framesIn).toBe(N * FRAMES);
    expect(st.connections.open).toBe(N);
  });

  it('resumes reading after JS held every buffer (tiny ring, slow consumer)', async () => {
    // The ring into JS is tiny and frames are bigger than a buffer, so the
    // engine keeps buffers lent while JS lags; the backend must stop, then
    // come back when they are released.
    const received = new Map<number, number>();
    let order = true;
    const server = listenRaw(
      { backend: 'io_uring', recvBufferCount: 4, recvBufferBytes: 1024, ringBytes: 64 * 1024 },
      {
        frame(conn, data) {
          const n = received.get(conn) ?? 0;
          if (data.readUInt32LE(0) !== n) order = false;
          received.set(conn, n + 1);
          // Busy for a moment: the I/O thread fills the ring meanwhile.
          const until = Date.now() + (n % 50 === 0 ? 2 : 0);
          while (Date.now() < until);
          if (n + 1 === 500) server.send(conn, Buffer.from('done'));
        },
      },
    );
    servers.push(server);
    const conns: FramedClient[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await FramedClient.connect(server.port);
      clients.push(c);
      conns.push(c);
    }
    for (const c of conns) {
      const parts: Buffer[] = [];
      for (let k = 0; k < 500; k++) {
        const p = pattern(k, 1500);
        p.writeUInt32LE(k, 0);
        parts.push(frame(p));
      }
      c.sendRaw(Buffer.concat(parts));
    }
    await Promise.all(conns.map((c) => c.waitFrames(1)));
    for (const c of conns) expect(c.frames[0]!.toString()).toBe('done');
    expect(order).toBe(true);
    expect([...received.values()]).toEqual(new Array(20).fill(500));
    expect(server.stats().ring.stalls).toBeGreaterThan(0);
  });
});
