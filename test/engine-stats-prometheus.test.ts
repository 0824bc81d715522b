import { describe, expect, it } from 'vitest';
import { listenRaw, statsToPrometheus } from '../src/index.js';
import { FramedClient, until } from './fixtures/framed-client.js';

describe('stats as Prometheus text', () => {
  it('renders every counter with HELP, TYPE and labels, in the exposition format', async () => {
    const server = listenRaw({}, { frame: (c, d) => void server.send(c, d) });
    try {
      const c = await FramedClient.connect(server.port);
      c.send(Buffer.from('abc'));
      await c.waitFrames(1);
      c.destroy();
      // The native count drops first; the close record is drained by JS a moment later.
      await until(() => server.stats().connections.open === 0 && server.stats().ring.usedBytes === 0, 5000, 'close');
      const text = statsToPrometheus(server.stats(), { extraLabels: { server: 'a"b' } });
      const lines = text.trimEnd().split('\n');
      // Every sample line is `name{labels} value`, and follows its HELP and TYPE.
      const declared = new Set<string>();
      for (const line of lines) {
        if (line.startsWith('# HELP ')) continue;
        const t = /^# TYPE (\S+) (counter|gauge)$/.exec(line);
        if (t) {
          declared.add(t[1]!);
          continue;
        }
        const m = /^([a-z_]+)\{([^}]*)\} (\d+(\.\d+)?)$/.exec(line);
        expect(m, line).not.toBeNull();
        expect(declared.has(m![1]!), `${m![1]} declared before use`).toBe(true);
        expect(m![2]).toContain(`backend="${server.backend}"`);
        expect(m![2]).toContain('server="a\\"b"');
      }
      expect(text).toMatch(/^whirlwind_connections_accepted_total\{[^}]*\} 1$/m);
      expect(text).toMatch(/^whirlwind_frames_received_total\{[^}]*\} 1$/m);
      expect(text).toMatch(/^whirlwind_connections_peak\{[^}]*\} 1$/m);
      expect(text).toMatch(/^whirlwind_ring_used_bytes\{[^}]*\} 0$/m);
      expect(text).toMatch(new RegExp(`^whirlwind_ring_capacity_bytes\\{[^}]*\\} ${server.options.ringBytes * server.stats().ioThreads}$`, 'm'));
      expect(text).toMatch(/^whirlwind_connections_closed_total\{[^}]*reason="peer"[^}]*\} 1$/m);
      for (const name of declared) expect(name.endsWith('_total') ? 'counter' : 'gauge').toBe(text.includes(`# TYPE ${name} counter`) ? 'counter' : 'gauge');
    } finally {
      await server.close();
    }
  });

  it('refuses what would make invalid exposition text: a bad prefix, label name or label value, or no stats', () => {
    const server = listenRaw({}, {});
    try {
      const st = server.stats();
      expect(() => statsToPrometheus(st, { prefix: 5 as never })).toThrow(/options\.prefix must be a metric-name prefix/);
      expect(() => statsToPrometheus(st, { prefix: 'my app_' })).toThrow(/options\.prefix must be a metric-name prefix .* got "my app_"/);
      expect(() => statsToPrometheus(st, { extraLabels: { 'bad label': 'x' } })).toThrow(/invalid label name "bad label"/);
      expect(() => statsToPrometheus(st, { extraLabels: { __name: 'x' } })).toThrow(/invalid label name "__name"/);
      expect(() => statsToPrometheus(st, { extraLabels: { n: 1 as never } })).toThrow(/options\.extraLabels\.n must be a string, got number/);
      expect(() => statsToPrometheus(null as never)).toThrow(/stats must be a stats\(\) snapshot, got null/);
      expect(() => statsToPrometheus({} as never)).toThrow(/stats must be a stats\(\) snapshot/);
      // An empty prefix and good labels are fine.
      expect(statsToPrometheus(st, { prefix: '', extraLabels: { server: 'a' } })).toMatch(/^connections_open\{backend="[a-z_]+",server="a"\} 0$/m);
    } finally {
      server.destroy();
    }
  });

  it('ring.usedBytes counts records JS has not drained yet', async () => {
    const server = listenRaw({}, { frame: () => {} });
    try {
      const c = await FramedClient.connect(server.port);
      await until(() => server.stats().connections.peak === 1 && server.stats().ring.usedBytes === 0, 5000, 'open drained');
      c.send(Buffer.alloc(100));
      // JS is blocked here, so the frame's record stays in the ring once written.
      const deadline = Date.now() + 5000;
      while (server.stats().ring.usedBytes === 0 && Date.now() < deadline);
      expect(server.stats().ring.usedBytes).toBe(16 + 112); // record header + payload, 16-aligned
      await until(() => server.stats().ring.usedBytes === 0, 5000, 'drained');
      c.destroy();
    } finally {
      await server.close();
    }
  });
});
