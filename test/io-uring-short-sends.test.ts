// Short sends: frames far larger than the socket's send buffer, to a reader
// that stops reading for a while.  The kernel takes part of each send; the
// backend must go on from where it stopped, keep one send outstanding per
// connection, and report the send only when every byte is written.  Run
// with plain IORING_OP_SEND and with IORING_OP_SEND_ZC (forced on by
// WHIRLWIND_IO_URING_SEND_ZC=1), whose buffers stay the kernel's until the
// notification.
import { afterEach, describe, expect, it } from 'vitest';
import { listenRaw, type RawServer } from '../src/index.js';
import { FramedClient, pattern, until } from './fixtures/framed-client.js';
import { uringAvailable, uringTitle } from './fixtures/io-uring.js';

const servers: RawServer[] = [];
const clients: FramedClient[] = [];

afterEach(async () => {
  delete process.env.WHIRLWIND_IO_URING_SEND_ZC;
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

describe.skipIf(!uringAvailable)(uringTitle('io_uring short sends'), () => {
  for (const zc of [false, true]) {
    it(`writes 4 frames of 6 MiB to a paused reader completely and in order${zc ? ' (SEND_ZC)' : ''}`, async () => {
      if (zc) process.env.WHIRLWIND_IO_URING_SEND_ZC = '1';
      let conn = -1;
      const drains: number[] = [];
      const server = listenRaw(
        { backend: 'io_uring' },
        {
          open(c) {
            conn = c;
          },
          drain(c) {
            drains.push(c);
          },
        },
      );
      servers.push(server);
      const c = await FramedClient.connect(server.port);
      clients.push(c);
      c.socket.pause();
      await until(() => conn >= 0, 5000, 'open');
      const frames = [0, 1, 2, 3].map((i) => pattern(100 + i, 6 * 1024 * 1024));
      for (const f of frames) expect(server.send(conn, f)).toBe(true);
      // The client reads nothing yet: most of 24 MiB is still pending on the
      // server, so the sends so far were short.
      await new Promise((r) => setTimeout(r, 200));
      expect(server.pendingBytes(conn)).toBeGreaterThan(0);
      c.socket.resume();
      const got = await c.waitFrames(4, 30_000);
      expect(got.length).toBe(4);
      for (let i = 0; i < 4; i++) expect(got[i]!.equals(frames[i]!)).toBe(true);
      await until(() => server.pendingBytes(conn) === 0, 5000, 'pending bytes to reach 0');
      expect(server.stats().bytesOut).toBe(4 * (4 + 6 * 1024 * 1024));
      expect(server.isOpen(conn)).toBe(true);
    });
  }

  it('interleaves a slow reader and a fast one without holding the fast one back', async () => {
    const opens: number[] = [];
    const server = listenRaw(
      { backend: 'io_uring' },
      {
        open(c) {
          opens.push(c);
        },
        frame(c, data) {
          server.send(c, data);
        },
      },
    );
    servers.push(server);
    const slow = await FramedClient.connect(server.port);
    const fast = await FramedClient.connect(server.port);
    clients.push(slow, fast);
    slow.socket.pause();
    await until(() => opens.length === 2, 5000, 'opens');
    const big = pattern(9, 8 * 1024 * 1024);
    server.send(opens[0]!, big);
    for (let i = 0; i < 100; i++) fast.send(pattern(i, 1000));
    const got = await fast.waitFrames(100);
    for (let i = 0; i < 100; i++) expect(got[i]!.equals(pattern(i, 1000))).toBe(true);
    slow.socket.resume();
    const s = await slow.waitFrames(1, 30_000);
    expect(s[0]!.equals(big)).toBe(true);
  });
});
