// Cancellation: closing a connection while its multishot recv and a send are
// in the kernel must cancel both and report exactly one close; closing the
// server with such connections must finish, with one close event each.
// Runs with plain sends and with SEND_ZC (WHIRLWIND_IO_URING_SEND_ZC=1),
// whose buffers stay the kernel's until their notifications are in.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listenRaw, type CloseInfo, type RawServer } from '../src/index.js';
import { FramedClient, pattern, until } from './fixtures/framed-client.js';
import { uringAvailable, uringTitle } from './fixtures/io-uring.js';

const servers: RawServer[] = [];
const clients: FramedClient[] = [];

afterEach(async () => {
  delete process.env.WHIRLWIND_IO_URING_SEND_ZC;
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

function recorder() {
  const opens: number[] = [];
  const closes = new Map<number, CloseInfo[]>();
  const server = listenRaw(
    { backend: 'io_uring' },
    {
      open(c) {
        opens.push(c);
      },
      frame(c, data) {
        server.send(c, data);
      },
      close(c, info) {
        const l = closes.get(c) ?? [];
        l.push(info);
        closes.set(c, l);
      },
    },
  );
  servers.push(server);
  return { server, opens, closes };
}

describe.skipIf(!uringAvailable).each([
  { sends: 'plain sends', zc: '0' },
  { sends: 'SEND_ZC', zc: '1' },
])(uringTitle('io_uring cancellation on close, $sends'), ({ zc }) => {
  beforeEach(() => {
    process.env.WHIRLWIND_IO_URING_SEND_ZC = zc;
  });

  it('closes a connection with a recv and a blocked send in flight: one close, peer sees EOF', async () => {
    const { server, opens, closes } = recorder();
    const c = await FramedClient.connect(server.port);
    clients.push(c);
    c.socket.pause(); // the send below cannot finish
    await until(() => opens.length === 1, 5000, 'open');
    const conn = opens[0]!;
    server.send(conn, pattern(1, 16 * 1024 * 1024));
    await new Promise((r) => setTimeout(r, 100));
    expect(server.pendingBytes(conn)).toBeGreaterThan(0);
    expect(server.closeConnection(conn, { flush: false })).toBe(true);
    c.socket.resume();
    await c.waitClosed();
    await until(() => closes.has(conn), 5000, 'the close event');
    expect(closes.get(conn)!.map((i) => i.reason)).toEqual(['local']);
    await until(() => server.stats().connections.open === 0, 5000, 'open count 0');
    // The server goes on serving.
    const d = await FramedClient.connect(server.port);
    clients.push(d);
    d.send(Buffer.from('still here'));
    expect((await d.waitFrames(1))[0]!.toString()).toBe('still here');
  });

  it('closes idle, paused and sending connections alike, many at once', async () => {
    const { server, opens, closes } = recorder();
    const cs: FramedClient[] = [];
    for (let i = 0; i < 60; i++) {
      const c = await FramedClient.connect(server.port);
      clients.push(c);
      cs.push(c);
    }
    await until(() => opens.length === 60, 5000, 'opens');
    for (let i = 0; i < 60; i++) {
      const conn = opens[i]!;
      if (i % 3 === 1) server.pauseReading(conn);
      if (i % 3 === 2) {
        cs[i]!.socket.pause();
        server.send(conn, Buffer.alloc(4 * 1024 * 1024, i));
      }
    }
    // Pause and close race: the close is queued right behind the pause.
    for (const conn of opens) server.closeConnection(conn, { flush: false });
    await Promise.all(cs.map((c) => (c.socket.resume(), c.waitClosed())));
    await until(() => closes.size === 60, 5000, '60 closes');
    for (const conn of opens) expect(closes.get(conn)!.length).toBe(1);
    await until(() => server.stats().connections.open === 0, 5000, 'open count 0');
  });

  it('server close with recvs and sends in flight resolves with one server-closing close each', async () => {
    const { server, opens, closes } = recorder();
    const cs: FramedClient[] = [];
    for (let i = 0; i < 40; i++) {
      const c = await FramedClient.connect(server.port);
      clients.push(c);
      cs.push(c);
    }
    await until(() => opens.length === 40, 5000, 'opens');
    for (let i = 0; i < 40; i += 2) {
      cs[i]!.socket.pause();
      server.send(opens[i]!, Buffer.alloc(8 * 1024 * 1024, i));
    }
    servers.splice(servers.indexOf(server), 1);
    await server.close();
    expect(closes.size).toBe(40);
    for (const conn of opens) {
      const l = closes.get(conn)!;
      expect(l.length).toBe(1);
      expect(l[0]!.reason).toBe('server-closing');
    }
    for (const c of cs) c.socket.resume();
    await Promise.all(cs.map((c) => c.waitClosed()));
  });

  it('a server destroyed with traffic in flight stops without a crash', async () => {
    const { server, opens } = recorder();
    const cs: FramedClient[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await FramedClient.connect(server.port);
      clients.push(c);
      cs.push(c);
    }
    await until(() => opens.length === 20, 5000, 'opens');
    for (let i = 0; i < 20; i++) {
      cs[i]!.socket.pause();
      server.send(opens[i]!, Buffer.alloc(4 * 1024 * 1024, i));
      cs[i]!.send(pattern(i, 1000));
    }
    servers.splice(servers.indexOf(server), 1);
    server.destroy();
    for (const c of cs) c.socket.resume();
    await Promise.all(cs.map((c) => c.waitClosed()));
    expect(cs.every((c) => c.ended)).toBe(true);
  });
});
