// One connection floods frames the server does not answer (zero-length
// frames: four bytes on the wire, a record in the ring each) while a client
// makes ordinary requests: the client keeps being answered.  Before the
// engine kept wake_pending set across its out-of-budget yield, the I/O
// threads re-queued a threadsafe-function call at every yield and Node ran
// them back to back, so JS never left the drain: the client got no answer
// for as long as the flood lasted (5 s and more).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { backendCases } from './fixtures/backends.js';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';

useActorServers();

const FLOOD_MS = 3000;
// A child process, so the flood does not share the test's event loop.  It
// writes whenever the socket takes more, reads and drops what comes back,
// and stops after FLOOD_MS.
const FLOODER = `
const net = require('node:net');
const [port, ms] = process.argv.slice(1).map(Number);
const chunk = Buffer.alloc(64 * 1024); // 16384 zero-length frames
const s = net.connect(port, '127.0.0.1', () => {
  console.log('connected');
  const end = Date.now() + ms;
  const pump = () => {
    while (Date.now() < end) if (!s.write(chunk)) return void s.once('drain', pump);
    s.destroy();
  };
  pump();
});
s.on('data', () => {});
s.on('error', () => {});
`;

describe.each(backendCases)('actor server under a flood of unanswered frames: $title', ({ name, available }) => {
  it.skipIf(!available)('another client is answered all through the flood', async () => {
    const s = await startServer({ backend: name, heartbeatIntervalMs: 0 });
    const c = await client(s);
    expect((await c.request('echo', 'before')).body).toBe('before');
    const framesBefore = s.stats().engine.framesIn;
    const child = spawn(process.execPath, ['-e', FLOODER, String(s.port), String(FLOOD_MS)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = once(child, 'exit');
    try {
      const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
      expect(line).toBe('connected');
      // Requests one after another for most of the flood, each with a
      // deadline far beyond a loaded machine's latency but well inside it.
      const started = Date.now();
      let answered = 0;
      while (Date.now() - started < FLOOD_MS - 500) {
        const body = `r${answered}`;
        expect((await c.request('echo', body, { timeout: 2000 })).body).toBe(body);
        answered++;
      }
      // The flood did reach the server meanwhile (else this proves nothing).
      expect(s.stats().engine.framesIn - framesBefore).toBeGreaterThan(1_000_000);
      expect(answered).toBeGreaterThan(2);
    } finally {
      child.kill();
      await exited;
    }
    expect((await c.request('echo', 'after')).body).toBe('after');
  });
});
