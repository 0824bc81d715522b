// Actor server options: defaults frozen, every bad value refused with an
// error that names the option, engine options passed through.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ACTOR_DEFAULTS, OptionError, createServer } from '../src/index.js';
import { TEST_ACTOR } from './fixtures/actor-server.js';

describe('actor server options', () => {
  it('keeps the defaults in one frozen object', () => {
    expect(Object.isFrozen(ACTOR_DEFAULTS)).toBe(true);
    const s = createServer({ actor: TEST_ACTOR });
    expect(s.options).toEqual(ACTOR_DEFAULTS);
  });

  it.each([
    ['minWorkers', -1],
    ['maxWorkers', 0],
    ['workerIdleTimeoutMs', 0],
    ['maxQueue', 1.5],
    ['mailboxLimit', 0],
    ['handlerTimeoutMs', -5],
    ['maxTurnsPerConnection', 0],
    ['maxTurnsPerTask', 'many'],
    ['resourceLimits', 5],
    ['maxBodyBytes', -1],
    ['maxDepth', 0],
    ['requireChecksum', 'yes'],
    ['heartbeatIntervalMs', -1],
    ['heartbeatTimeoutMs', 0],
    ['outboundBudgetBytes', -1],
    ['defaultPushPolicy', 'coalesce'],
  ])('refuses %s = %j with an OptionError naming it', (option, value) => {
    expect(() => createServer({ actor: TEST_ACTOR, [option]: value })).toThrow(OptionError);
    expect(() => createServer({ actor: TEST_ACTOR, [option]: value })).toThrow(`options.${option} `);
  });

  it('refuses minWorkers above maxWorkers, unknown options, protocolCheck, a missing actor and bad resource limits', () => {
    expect(() => createServer({ actor: TEST_ACTOR, minWorkers: 3, maxWorkers: 2 })).toThrow('options.minWorkers must not exceed maxWorkers');
    expect(() => createServer({ actor: TEST_ACTOR, nope: 1 } as never)).toThrow('options.nope is not an option');
    expect(() => createServer({ actor: TEST_ACTOR, protocolCheck: false } as never)).toThrow('options.protocolCheck');
    expect(() => createServer({} as never)).toThrow('options.actor');
    expect(() => createServer({ actor: TEST_ACTOR, resourceLimits: { heap: 5 } as never })).toThrow('options.resourceLimits.heap');
  });

  it('passes engine options to the engine, which validates them', async () => {
    const s = createServer({ actor: TEST_ACTOR, ringBytes: 5000 });
    await expect(s.listen()).rejects.toThrow('options.ringBytes must be a power of two');
  });

  it('refuses a module without an actor class when listening', async () => {
    const s = createServer({ actor: new URL('./fixtures/actors/not-an-actor.mjs', import.meta.url) });
    await expect(s.listen()).rejects.toThrow('must export a SocketActor subclass');
  });

  it('refuses a class that does not extend SocketActor, and names the module and the option when it cannot be loaded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ww-actor-'));
    try {
      const plain = join(dir, 'plain.mjs');
      writeFileSync(plain, 'export default class P { static handlers = { echo: (b) => b }; }\n');
      await expect(createServer({ actor: plain }).listen()).rejects.toThrow(/must extend SocketActor \(it has no initialState\(\)\)/);
      const broken = join(dir, 'broken.mjs');
      writeFileSync(broken, 'export default class {\n');
      const e = await createServer({ actor: broken }).listen().then(() => null, (x: Error) => x);
      expect(e).toBeInstanceOf(OptionError);
      expect(e!.message).toMatch(new RegExp(`^options\\.actor could not load file://.*broken\\.mjs: \\w*Error: `)); // (SyntaxError in Node; vitest's loader words it its own way)
      const missing = join(dir, 'missing.mjs');
      await expect(createServer({ actor: missing }).listen()).rejects.toThrow(/^options\.actor could not load file:\/\/.*missing\.mjs: Error: Cannot find module/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses maxFrameBytes below the 28-byte protocol header', () => {
    expect(() => createServer({ actor: TEST_ACTOR, maxFrameBytes: 10 })).toThrow(/options\.maxFrameBytes must be at least 28 for an actor server/);
  });
});
