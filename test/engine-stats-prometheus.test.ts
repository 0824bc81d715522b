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
      await until(() => server.stats().connections.open === 0, 5000, 'close');
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
      expect(text).toMatch(/^whirlwind_connections_closed_total\{[^}]*reason="peer"[^}]*\} 1$/m);
      for (const name of declared) expect(name.endsWith('_total') ? 'counter' : 'gauge').toBe(text.includes(`# TYPE ${name} counter`) ? 'counter' : 'gauge');
    } finally {
      await server.close();
    }
  });
});
