// Admission limits, the idle sweep and TCP keep-alive, over every backend.
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listenRaw, type CloseInfo, type RawServer } from '../src/index.js';
import { backendCases } from './fixtures/backends.js';
import { FramedClient, frame, until } from './fixtures/framed-client.js';

const servers: RawServer[] = [];
const clients: FramedClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

async function connectFrom(port: number, localAddress?: string): Promise<FramedClient> {
  const c = await new Promise<FramedClient>((resolve, reject) => {
    // FramedClient.connect has no localAddress; wrap a socket we connect ourselves.
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    s.once('error', reject);
    s.once('connect', () => {
      s.destroy();
      FramedClient.connect(port).then(resolve, reject);
    });
  });
  return c;
}

describe.each(backendCases)('admission and idle: $title', ({ name, available }) => {
  it.skipIf(!available)('refuses connections over maxConnections with the refuse frame, and admits again after a close', async () => {
    const opens: number[] = [];
    const server = listenRaw({ backend: name, maxConnections: 3, refuseFrame: frame(Buffer.from('full')) }, {
      open: (c) => void opens.push(c),
    });
    servers.push(server);
    const admitted = [];
    for (let i = 0; i < 3; i++) {
      const c = await FramedClient.connect(server.port);
      clients.push(c);
      admitted.push(c);
    }
    await until(() => opens.length === 3, 5000, 'three opens');
    const refused = await FramedClient.connect(server.port);
    clients.push(refused);
    await refused.waitClosed();
    expect(refused.frames.map((f) => f.toString())).toEqual(['full']);
    expect(opens.length).toBe(3);
    expect(server.stats().connections.refused).toBe(1);
    admitted[0]!.destroy();
    await until(() => server.stats().connections.open === 2, 5000, 'a slot to free up');
    const again = await FramedClient.connect(server.port);
    clients.push(again);
    await until(() => opens.length === 4, 5000, 'admitted again');
    expect(again.ended).toBe(false);
  });

  it.skipIf(!available)('an accept hook admits or refuses by peer, sync or async, with a deadline', async () => {
    const opens: number[] = [];
    const closes: CloseInfo[] = [];
    const frames: string[] = [];
    let mode: 'yes' | 'no' | 'slow-yes' | 'too-slow' | 'throw' = 'yes';
    const seen: string[] = [];
    const server = listenRaw(
      {
        backend: name,
        acceptHookTimeoutMs: 200,
        refuseFrame: frame(Buffer.from('go away')),
        acceptHook: (peer) => {
          seen.push(`${mode}:${peer.address}`);
          if (mode === 'yes') return true;
          if (mode === 'no') return false;
          if (mode === 'throw') throw new Error('hook failed');
          const ms = mode === 'slow-yes' ? 50 : 1000;
          return new Promise((resolve) => setTimeout(() => resolve(true), ms));
        },
      },
      {
        open: (c) => void opens.push(c),
        close: (_c, info) => void closes.push(info),
        frame: (c, d) => {
          frames.push(d.toString());
          server.send(c, d);
        },
      },
    );
    servers.push(server);
    const expectRefused = async () => {
      const c = await FramedClient.connect(server.port);
      clients.push(c);
      c.send(Buffer.from('ignored'));
      await c.waitClosed();
      expect(c.frames.map((f) => f.toString())).toEqual(['go away']);
    };
    const expectAdmitted = async (text: string) => {
      const c = await FramedClient.connect(server.port);
      clients.push(c);
      c.send(Buffer.from(text));
      const got = await c.waitFrames(1);
      expect(got[0]!.toString()).toBe(text);
    };
    await expectAdmitted('sync yes');
    mode = 'no';
    await expectRefused();
    mode = 'slow-yes';
    await expectAdmitted('async yes');
    mode = 'too-slow';
    await expectRefused();
    mode = 'throw';
    await expectRefused();
    expect(seen).toEqual(['yes:127.0.0.1', 'no:127.0.0.1', 'slow-yes:127.0.0.1', 'too-slow:127.0.0.1', 'throw:127.0.0.1']);
    // The user's handlers heard of the two admitted connections only; nothing
    // a refused client sent was read.
    expect(opens.length).toBe(2);
    expect(frames).toEqual(['sync yes', 'async yes']);
    expect(closes.length).toBe(0);
    await until(() => server.stats().connections.closed.refused === 3, 5000, 'refusals counted');
    expect(server.stats().connections.refused).toBe(3);
  });

  it.skipIf(!available)('limits connections per peer address', async () => {
    const opens: string[] = [];
    const server = listenRaw({ backend: name, host: '0.0.0.0', maxConnectionsPerAddress: 2 }, {
      open: (_c, peer) => void opens.push(peer.address),
    });
    servers.push(server);
    const sock = (localAddress: string) =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ port: server.port, host: '127.0.0.1', localAddress });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      });
    const a1 = await sock('127.0.0.1');
    const a2 = await sock('127.0.0.1');
    await until(() => opens.length === 2, 5000, 'two opens');
    const a3 = await sock('127.0.0.1');
    await new Promise<void>((resolve) => a3.once('close', () => resolve()));
    const b1 = await sock('127.0.0.2');
    await until(() => opens.length === 3, 5000, 'other address admitted');
    expect(opens).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.2']);
    expect(server.stats().connections.refused).toBe(1);
    for (const s of [a1, a2, b1]) s.destroy();
  });

  it.skipIf(!available)('closes idle connections after the idle frame, and leaves active ones alone', async () => {
    const closes = new Map<number, CloseInfo>();
    const opens: number[] = [];
    const server = listenRaw({ backend: name, idleTimeoutMs: 300, idleFrame: frame(Buffer.from('bye: idle')) }, {
      open: (c) => void opens.push(c),
      frame: (c, d) => void server.send(c, d),
      close: (c, info) => void closes.set(c, info),
    });
    servers.push(server);
    const idle = await FramedClient.connect(server.port);
    const busy = await FramedClient.connect(server.port);
    clients.push(idle, busy);
    const t0 = Date.now();
    const timer = setInterval(() => busy.send(Buffer.from('tick')), 60);
    try {
      await idle.waitClosed(5000);
    } finally {
      clearInterval(timer);
    }
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(idle.frames.map((f) => f.toString())).toEqual(['bye: idle']);
    await until(() => closes.size === 1, 5000, 'close event');
    const [, info] = [...closes.entries()][0]!;
    expect(info.reason).toBe('idle');
    expect(info.message).toMatch(/300 ms/);
    expect(busy.ended).toBe(false);
    expect(server.stats().connections.closed.idle).toBe(1);
  });

  it.skipIf(!available)('closes a connection whose flushed close cannot finish (the peer reads nothing) after flushTimeoutMs', async () => {
    const closes = new Map<number, CloseInfo>();
    const opens: number[] = [];
    const server = listenRaw({ backend: name, flushTimeoutMs: 300 }, {
      open: (c) => void opens.push(c),
      close: (c, info) => void closes.set(c, info),
    });
    servers.push(server);
    // A peer that never reads: 32 MiB cannot all fit in the two sockets' buffers.
    const sock = net.connect({ port: server.port, host: '127.0.0.1' });
    sock.pause();
    sock.on('error', () => {});
    await until(() => opens.length === 1, 5000, 'open');
    const conn = opens[0]!;
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < 32; i++) expect(server.send(conn, chunk)).toBe(true);
    expect(server.closeConnection(conn)).toBe(true); // flushed: waits for the peer
    const t0 = Date.now();
    await until(() => closes.size === 1, 5000, 'the stuck flushed close ends');
    const took = Date.now() - t0;
    const info = closes.get(conn)!;
    expect([info.reason, info.detail]).toEqual(['idle', 300]);
    // A whole timeout after the close began (the sweep runs every quarter of it).
    expect(took).toBeGreaterThanOrEqual(250);
    expect(server.stats().pendingSendBytes).toBe(0);
    sock.destroy();
  });

  // ss is Linux's: Windows has no tool that shows another socket's
  // keep-alive timer.  test/windows/linux-clients.mjs checks the Windows
  // build's keep-alive with ss from the Linux side, under Wine.
  it.skipIf(!available || process.platform === 'win32')('turns on TCP keep-alive with keepAliveMs', async () => {
    const server = listenRaw({ backend: name, keepAliveMs: 30_000 }, {});
    servers.push(server);
    const c = await FramedClient.connect(server.port);
    clients.push(c);
    await until(() => server.stats().connections.open === 1, 5000, 'open');
    // ss shows the server side's keep-alive timer (Linux).
    const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${server.port} )`], { encoding: 'utf8' });
    expect(out).toMatch(/timer:\(keepalive,/);
  });
});
