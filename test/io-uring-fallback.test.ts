// Choice and fallback: where io_uring cannot run, `auto` takes epoll and the
// server says so (and serves); forcing io_uring, by option or by
// WHIRLWIND_BACKEND, is a clear error naming the reason.  "Cannot run" is
// either simulated (WHIRLWIND_IO_URING_PROBE_FAIL=1 makes the probe say no) or
// real: a seccomp filter (fixtures/seccomp-exec.py) refusing the io_uring
// system calls with EPERM or ENOSYS, as container profiles do.  Each case
// runs in a child process so its environment is its own.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { uringAvailable, uringTitle } from './fixtures/io-uring.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/backend-choice.mjs', import.meta.url));
const SECCOMP = fileURLToPath(new URL('./fixtures/seccomp-exec.py', import.meta.url));

interface Choice {
  probe: Array<{ name: string; available: boolean; reason: string }>;
  auto?: string;
  autoError?: { name: string; message: string };
  serverBackend?: string;
  echoed?: string;
  serverError?: { name: string; message: string };
  forced?: string;
  forcedError?: { name: string; message: string; backend: string; reason: string };
}

/** Runs the fixture with `env`; `refuse`: under a seccomp filter that makes the io_uring calls fail with that errno. */
function run(env: Record<string, string>, refuse?: 'EPERM' | 'ENOSYS'): Choice {
  const clean = { ...process.env };
  delete clean.WHIRLWIND_BACKEND;
  delete clean.WHIRLWIND_IO_URING_PROBE_FAIL;
  const [cmd, args] = refuse ? ['python3', [SECCOMP, refuse, process.execPath, FIXTURE]] : [process.execPath, [FIXTURE]];
  const out = execFileSync(cmd, args, { env: { ...clean, ...env }, encoding: 'utf8' });
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

  // The real thing, not a simulation: the io_uring system calls refused by a
  // seccomp filter, as Docker's default profile (EPERM) or a profile that
  // hides them (ENOSYS) does.  The filter is x86_64's.
  const x64 = process.arch === 'x64';
  it.skipIf(!x64).each([
    { errno: 'EPERM' as const, profile: "Docker's default", reason: "io_uring_setup failed: EPERM (blocked by seccomp, e.g. Docker's default profile)" },
    { errno: 'ENOSYS' as const, profile: 'one that hides io_uring', reason: 'io_uring_setup failed: ENOSYS (the kernel has no io_uring, or a seccomp profile hides it)' },
  ])(
    `under a seccomp profile refusing io_uring with $errno ($profile), auto serves on epoll and forcing io_uring names the cause${x64 ? '' : ` (skipped: the seccomp fixture's filter is for x86_64; this is ${process.arch})`}`,
    ({ errno, reason }) => {
      const r = run({}, errno);
      const u = r.probe.find((b) => b.name === 'io_uring')!;
      expect(u.available).toBe(false);
      expect(u.reason).toBe(reason);
      expect(r.auto).toBe('epoll');
      expect(r.serverBackend).toBe('epoll');
      expect(r.echoed).toBe('ping');
      expect(r.forcedError?.name).toBe('BackendUnavailableError');
      expect(r.forcedError?.reason).toBe(reason);
      expect(r.forcedError?.message).toContain(errno);
    },
  );

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
    expect(r.echoed).toBe('ping');
    expect(r.forced).toBe('io_uring');
  });
});
