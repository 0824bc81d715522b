// Choice and fallback: where io_uring cannot run (simulated with
// WHIRLWIND_IO_URING_PROBE_FAIL=1, which makes its probe say no), `auto`
// takes epoll and the server says so; forcing io_uring, by option or by
// WHIRLWIND_BACKEND, is a clear error naming the reason.  Each case runs in
// a child process so its environment is its own.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { uringAvailable, uringTitle } from './fixtures/io-uring.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/backend-choice.mjs', import.meta.url));

interface Choice {
  probe: Array<{ name: string; available: boolean; reason: string }>;
  auto?: string;
  autoError?: { name: string; message: string };
  serverBackend?: string;
  serverError?: { name: string; message: string };
  forced?: string;
  forcedError?: { name: string; message: string; backend: string; reason: string };
}

function run(env: Record<string, string>): Choice {
  const clean = { ...process.env };
  delete clean.WHIRLWIND_BACKEND;
  delete clean.WHIRLWIND_IO_URING_PROBE_FAIL;
  const out = execFileSync(process.execPath, [FIXTURE], { env: { ...clean, ...env }, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as Choice;
}

// io_uring and epoll are Linux backends: on Windows (the Wine pass) the
// choice is IOCP alone, and these cases are reported skipped with the reason.
const linux = process.platform === 'linux';
const title = linux ? 'backend choice and fallback' : `backend choice and fallback (skipped: io_uring and epoll are Linux backends; this is ${process.platform})`;

describe.skipIf(!linux)(title, () => {
  it('falls back to epoll when the io_uring probe fails, and says why', () => {
    const r = run({ WHIRLWIND_IO_URING_PROBE_FAIL: '1' });
    const u = r.probe.find((b) => b.name === 'io_uring')!;
    expect(u.available).toBe(false);
    expect(u.reason).toMatch(/WHIRLWIND_IO_URING_PROBE_FAIL/);
    expect(r.auto).toBe('epoll');
    expect(r.serverBackend).toBe('epoll');
    expect(r.forcedError?.name).toBe('BackendUnavailableError');
    expect(r.forcedError?.backend).toBe('io_uring');
    expect(r.forcedError?.message).toMatch(/io_uring/);
    expect(r.forcedError?.message).toMatch(/WHIRLWIND_IO_URING_PROBE_FAIL/);
  });

  it('WHIRLWIND_BACKEND=io_uring with io_uring unavailable is a clear error, not a silent fallback', () => {
    const r = run({ WHIRLWIND_IO_URING_PROBE_FAIL: '1', WHIRLWIND_BACKEND: 'io_uring' });
    expect(r.auto).toBeUndefined();
    expect(r.autoError?.name).toBe('BackendUnavailableError');
    expect(r.autoError?.message).toMatch(/WHIRLWIND_IO_URING_PROBE_FAIL/);
    expect(r.serverError?.name).toBe('BackendUnavailableError');
  });

  it('WHIRLWIND_BACKEND=epoll forces epoll', () => {
    const r = run({ WHIRLWIND_BACKEND: 'epoll' });
    expect(r.auto).toBe('epoll');
    expect(r.serverBackend).toBe('epoll');
  });

  it.skipIf(!uringAvailable)(uringTitle('auto picks io_uring where it is available'), () => {
    const r = run({});
    expect(r.probe.find((b) => b.name === 'io_uring')!.available).toBe(true);
    expect(r.auto).toBe('io_uring');
    expect(r.serverBackend).toBe('io_uring');
    expect(r.forced).toBe('io_uring');
  });
});
