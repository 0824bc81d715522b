import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, ENGINE_DEFAULTS, listenRaw, OptionError, resolveEngineOptions } from '../src/index.js';
import { chooseBackend, probeBackends } from '../src/backends.js';

describe('engine options', () => {
  it('defaults are frozen and complete', () => {
    expect(Object.isFrozen(ENGINE_DEFAULTS)).toBe(true);
    expect(resolveEngineOptions({})).toEqual(ENGINE_DEFAULTS);
  });

  it.each([
    [{ port: 70000 }, /options\.port must be an integer from 0 to 65535 \(got 70000\)/],
    [{ ringBytes: 5000 }, /options\.ringBytes must be a power of two/],
    [{ ringBytes: 1024 }, /options\.ringBytes must be an integer from 4096/],
    [{ ioThreads: 0 }, /options\.ioThreads must be an integer from 1 to 64/],
    [{ backend: 'kqueue' }, /options\.backend must be one of auto, io_uring, epoll, iocp \(got kqueue\)/],
    [{ host: '' }, /options\.host must be a non-empty string/],
    [{ sendLowWaterBytes: 10, sendHighWaterBytes: 5 }, /options\.sendLowWaterBytes must not exceed sendHighWaterBytes \(5; got 10\)/],
    [{ sendHighWaterBytes: 2048 }, /options\.sendHighWaterBytes must not be below sendLowWaterBytes \(65536, its default; got 2048\): set sendLowWaterBytes too/],
    [{ sendLowWaterBytes: 2 * 1024 * 1024 }, /options\.sendLowWaterBytes must not exceed sendHighWaterBytes \(1048576, its default; got 2097152\)/],
    [{ recvBufferCount: 70000 }, /options\.recvBufferCount must be an integer from 1 to 65535/],
    [{ bogus: 1 }, /options\.bogus is not an engine option/],
  ])('rejects %o with a message naming the option', (opts, msg) => {
    expect(() => resolveEngineOptions(opts as never)).toThrow(OptionError);
    expect(() => resolveEngineOptions(opts as never)).toThrow(msg);
  });

  it('every backend is probed and says why when it cannot run', () => {
    const all = probeBackends();
    expect(all.map((b) => b.name).sort()).toEqual(['epoll', 'io_uring', 'iocp']);
    for (const b of all) {
      if (!b.available) expect(b.reason.length).toBeGreaterThan(0);
      else expect(b.reason).toBe('');
    }
    expect(all.some((b) => b.available)).toBe(true);
  });

  it('forcing an unavailable backend is a clear error', () => {
    const missing = probeBackends().find((b) => !b.available)!;
    expect(() => chooseBackend(missing.name)).toThrow(BackendUnavailableError);
    expect(() => listenRaw({ backend: missing.name }, {})).toThrow(`backend ${missing.name} is not available: ${missing.reason}`);
  });

  it('chooseBackend: no argument means auto; an unknown name is an OptionError naming the backend option', () => {
    expect(chooseBackend()).toBe(chooseBackend('auto'));
    expect(() => chooseBackend('bogus' as never)).toThrow(OptionError);
    expect(() => chooseBackend('bogus' as never)).toThrow(/options\.backend must be one of auto, io_uring, epoll, iocp \(got bogus\)/);
  });

  it('handlers: each must be a function with a known name, checked before listening', () => {
    expect(() => listenRaw({}, { frame: 5 } as never)).toThrow(TypeError);
    expect(() => listenRaw({}, { frame: 5 } as never)).toThrow(/handlers\.frame must be a function, got number/);
    expect(() => listenRaw({}, { open: null } as never)).toThrow(/handlers\.open must be a function, got null/);
    expect(() => listenRaw({}, { onFrame() {} } as never)).toThrow(/"onFrame" is not a handler \(the handlers are open, frame, close, drain, batchEnd, error\)/);
    expect(() => listenRaw({}, null as never)).toThrow(/the handlers must be an object of functions/);
    // Explicitly undefined is as good as absent.
    const server = listenRaw({}, { frame: undefined });
    server.destroy();
  });

  it('WHIRLWIND_BACKEND forces the backend under auto, and a bad value is an error', () => {
    const old = process.env.WHIRLWIND_BACKEND;
    try {
      // The last available backend, so the variable (not the default order)
      // decides: epoll on Linux, iocp on Windows.
      const forced = probeBackends().filter((b) => b.available).pop()!.name;
      process.env.WHIRLWIND_BACKEND = forced;
      expect(chooseBackend('auto')).toBe(forced);
      process.env.WHIRLWIND_BACKEND = 'nope';
      expect(() => chooseBackend('auto')).toThrow(/WHIRLWIND_BACKEND must be one of/);
    } finally {
      if (old === undefined) delete process.env.WHIRLWIND_BACKEND;
      else process.env.WHIRLWIND_BACKEND = old;
    }
  });
});
