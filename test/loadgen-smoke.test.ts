// Smoke test for the benchmark harness: the native load generator drives an
// echo server for about a second and every reply must come back byte-exact.
// This is not a benchmark; it only proves the harness works.
//
// It builds nothing: build/Release/ww_loadgen and build/Release/ww_c_echo come
// from `npm install` (node-gyp rebuild).  When they are missing the test fails
// and says so, rather than skipping.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOADGEN = path.join(ROOT, 'build', 'Release', 'ww_loadgen');
const C_ECHO = path.join(ROOT, 'build', 'Release', 'ww_c_echo');
const HOST = '127.0.0.1';

interface EchoTarget {
  name: string;
  /** Executable and arguments; `--port <p> --host <h>` are appended. */
  command: string[];
  /** Files that must exist; a missing one fails the test with its name. */
  needs: string[];
}

// Every echo server the load generator is smoke-tested against.  The raw
// echo takes the engine's default backend (WHIRLWIND_BACKEND, else the best
// available); it imports the compiled package, which `npm test` builds first.
const targets: EchoTarget[] = [
  { name: 'C epoll echo', command: [C_ECHO], needs: [C_ECHO] },
  {
    name: 'whirlwind raw echo',
    command: [process.execPath, 'examples/raw-echo.mjs'],
    needs: [path.join(ROOT, 'examples', 'raw-echo.mjs'), path.join(ROOT, 'dist', 'src', 'index.js')],
  },
];

interface LoadgenResult {
  ok: boolean;
  replies: number;
  errors: number;
  mismatches: number;
  conn_errors: number;
  rate: number;
  latency_us: { p50: number; p99: number; max: number };
}

function requireBuilt(files: string[]): void {
  for (const f of [LOADGEN, ...files]) {
    if (!fs.existsSync(f)) {
      throw new Error(`${path.relative(ROOT, f)} is missing: build it first with 'npm install' (runs node-gyp rebuild)`);
    }
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Starts a server and resolves once it prints a line containing "listening". */
function startServer(command: string[], port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command[0], [...command.slice(1), '--port', String(port), '--host', HOST], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server did not print "listening" within 10 s: ${out}${err}`)), 10_000);
    proc.stdout!.on('data', (d) => {
      out += d;
      if (/listening/i.test(out)) {
        clearTimeout(timer);
        resolve(proc);
      }
    });
    proc.stderr!.on('data', (d) => (err += d));
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${signal ?? code}) before listening: ${err.trim()}`));
    });
  });
}

function runLoadgen(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(LOADGEN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function parseResult(stdout: string): LoadgenResult {
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`no RESULT line in load generator output:\n${stdout}`);
  return JSON.parse(line.slice('RESULT '.length)) as LoadgenResult;
}

describe.each(targets)('ww_loadgen against $name', (target) => {
  let server: ChildProcess | undefined;
  let port = 0;
  // Setup errors (a missing binary above all) are rethrown by the test
  // itself, so they show as a failed test, not as a skipped one.
  let setupError: unknown;

  beforeAll(async () => {
    try {
      requireBuilt(target.needs);
      port = await freePort();
      server = await startServer(target.command, port);
    } catch (err) {
      setupError = err;
    }
  });

  afterAll(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
  });

  it('gets byte-exact echo replies for about a second with no errors', async () => {
    if (setupError) throw setupError;
    const { code, stdout, stderr } = await runLoadgen([
      '--host', HOST, '--port', String(port),
      '--connections', '8', '--pipeline', '4', '--size', '200',
      '--duration', '1', '--warmup', '0.2', '--quiet',
    ]);
    const result = parseResult(stdout);
    expect(result.ok, stderr).toBe(true);
    expect(result.replies).toBeGreaterThan(0);
    expect(result.mismatches).toBe(0);
    expect(result.errors).toBe(0);
    expect(code, stderr).toBe(0);
    expect(result.latency_us.p50).toBeGreaterThan(0);
    expect(result.latency_us.max).toBeGreaterThanOrEqual(result.latency_us.p99);
  });
});
