// Hostile and broken clients over real sockets.  Each case: the bad
// connections are closed with a reason or held to their limits, every good
// connection is unaffected (every byte verified), and the process is healthy.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listenRaw, type CloseInfo, type RawServer } from '../src/index.js';
import { backendCases } from './fixtures/backends.js';
import { FramedClient, frame, pattern, until } from './fixtures/framed-client.js';

const servers: RawServer[] = [];
const clients: FramedClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

/** Good clients echo n frames each while `during` runs; every byte checked. */
async function goodTraffic(server: RawServer, count: number, during: () => Promise<void>): Promise<void> {
  const good = await Promise.all(Array.from({ length: count }, () => FramedClient.connect(server.port)));
  clients.push(...good);
  let round = 0;
  let stop = false;
  const pump = (async () => {
    while (!stop) {
      for (let j = 0; j < good.length; j++) good[j]!.send(pattern(round * 100 + j, 50 + j));
      round++;
      await Promise.all(good.map((c) => c.waitFrames(round)));
    }
  })();
  await during();
  stop = true;
  await pump;
  for (let j = 0; j < good.length; j++) {
    const got = good[j]!.frames;
    expect(got.length).toBe(round);
    for (let r = 0; r < round; r++) expect(got[r]!.equals(pattern(r * 100 + j, 50 + j))).toBe(true);
    expect(good[j]!.ended).toBe(false);
  }
}

function rawSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

describe.each(backendCases)('malformed input matrix: $title', ({ name, available }) => {
  function echoServer(opts = {}) {
    const closes: CloseInfo[] = [];
    const server = listenRaw({ backend: name, maxFrameBytes: 64 * 1024, ...opts }, {
      frame: (c, d) => void server.send(c, d),
      close: (_c, info) => void closes.push(info),
    });
    servers.push(server);
    return { server, closes };
  }

  it.skipIf(!available)('random bytes: those connections end with a reason, good ones are untouched', async () => {
    const { server, closes } = echoServer();
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const bad: net.Socket[] = [];
    await goodTraffic(server, 5, async () => {
      for (let i = 0; i < 20; i++) {
        const s = await rawSocket(server.port);
        s.on('error', () => {});
        s.on('data', () => {});
        const junk = Buffer.alloc(4096);
        for (let k = 0; k < junk.length; k++) junk[k] = rnd();
        s.write(junk);
        bad.push(s);
      }
      // Random lengths are mostly far above maxFrameBytes: those close at once.
      await until(() => closes.length >= 15, 10_000, 'bad connections closed');
    });
    for (const s of bad) s.destroy();
    expect(closes.filter((c) => c.reason === 'frame-too-large').length).toBeGreaterThanOrEqual(15);
  });

  it.skipIf(!available)('slowloris: a header then silence is closed by the idle sweep, good traffic flows', async () => {
    const { server, closes } = echoServer({ idleTimeoutMs: 300 });
    const slow: net.Socket[] = [];
    await goodTraffic(server, 3, async () => {
      for (let i = 0; i < 50; i++) {
        const s = await rawSocket(server.port);
        s.on('error', () => {});
        s.write(Buffer.from([0x10, 0x00])); // half a length prefix, then nothing
        slow.push(s);
      }
      await until(() => closes.filter((c) => c.reason === 'idle').length === 50, 10_000, 'idle closes');
      // Counted while the good clients are still busy: once the pump stops
      // they fall idle too, and a slow run would sweep them as well.
      expect(server.stats().connections.closed.idle).toBe(50);
    });
    for (const s of slow) s.destroy();
  });

  it.skipIf(!available)('a partial large frame costs only the bytes actually sent', async () => {
    const { server } = echoServer({ maxFrameBytes: 16 * 1024 * 1024 });
    const before = process.memoryUsage().rss;
    const socks: net.Socket[] = [];
    for (let i = 0; i < 200; i++) {
      const s = await rawSocket(server.port);
      s.on('error', () => {});
      const h = Buffer.alloc(4);
      h.writeUInt32LE(16 * 1024 * 1024); // announce 16 MiB each (3.2 GiB in all) ...
      s.write(Buffer.concat([h, Buffer.alloc(10)])); // ... and send 10 bytes
      socks.push(s);
    }
    await until(() => server.stats().connections.open === 200, 5000, 'opens');
    await new Promise((r) => setTimeout(r, 100));
    // Announcing is free: far below what 200 x 16 MiB would be.
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024);
    for (const s of socks) s.destroy();
  });

  it.skipIf(!available)('connect-and-close floods: every slot comes back, good traffic flows', async () => {
    const { server } = echoServer();
    await goodTraffic(server, 3, async () => {
      for (let batch = 0; batch < 20; batch++) {
        await Promise.all(
          Array.from({ length: 100 }, async () => {
            const s = await rawSocket(server.port);
            s.destroy();
          }),
        );
      }
    });
    await until(() => server.stats().connections.open === 3, 10_000, 'flood connections closed');
    const st = server.stats();
    expect(st.connections.accepted).toBe(2003);
    const closed = Object.values(st.connections.closed).reduce((a, b) => a + b, 0);
    expect(closed).toBe(2000);
  });
});
