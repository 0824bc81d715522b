// A client written from docs/protocol.md alone, in Python with only its
// standard library (examples/python/whirlwind_client.py), must decode the
// document's vectors and talk to the reference server.  Skipped (reported as
// skipped, not passed) where python3 is missing.
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ErrorCode, Kind, TEST_VECTORS } from '../src/protocol/index.js';
import { ReferenceServer } from './fixtures/protocol-server.js';

const python = spawnSync('python3', ['--version']).status === 0;
const script = fileURLToPath(new URL('../examples/python/whirlwind_client.py', import.meta.url));
const doc = fileURLToPath(new URL('../docs/protocol.md', import.meta.url));

function run(args: string[]): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    execFile('python3', [script, ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`));
      else resolve(stdout.trim().split('\n').map((line) => JSON.parse(line)));
    });
  });
}

describe.skipIf(!python)('a Python client written from the document', () => {
  let server: ReferenceServer;
  beforeAll(async () => {
    server = await ReferenceServer.start();
  });
  afterAll(() => server.stop());

  test('decodes every test vector of docs/protocol.md to the message it describes', async () => {
    const out = await run(['vectors', doc]);
    expect(out.map((m) => m.name)).toEqual(TEST_VECTORS.map((v) => v.name));
    for (const [i, v] of TEST_VECTORS.entries()) {
      expect(out[i]).toMatchObject({ kind: v.message.kind, id: v.message.id ?? 0, code: v.message.code ?? 0, action: v.message.action ?? '' });
      if (v.message.body !== undefined) expect(out[i]!.body).toEqual(v.message.body);
      else expect(out[i]).not.toHaveProperty('body');
      expect(out[i]!.attachment).toBe(Buffer.from(v.message.attachment ?? []).toString('hex'));
    }
  });

  test('talks to the reference server: echo with checksum and attachment, compression, errors, pushes after the reply, ping, bad checksum', async () => {
    const out = await run(['demo', '127.0.0.1', String(server.port)]);
    expect(out[0]).toMatchObject({ kind: Kind.REPLY, id: 1, body: { hello: 'world', n: [1, -2, 3.5, null, true] }, attachment: '68690a' });
    expect(out[1]).toMatchObject({ kind: Kind.REPLY, id: 2, body: { text: 'ab'.repeat(500) } });
    expect(out[2]).toMatchObject({ kind: Kind.ERROR, id: 3, code: ErrorCode.UNKNOWN_ACTION });
    expect(out[3]).toMatchObject({ kind: Kind.REPLY, id: 4, body: { pushed: 3 } });
    expect(out.slice(4, 7).map((m) => [m.kind, m.action, m.body])).toEqual([
      [Kind.PUSH, 'tick', { i: 0 }],
      [Kind.PUSH, 'tick', { i: 1 }],
      [Kind.PUSH, 'tick', { i: 2 }],
    ]);
    expect(out[7]).toMatchObject({ kind: Kind.PONG, id: 42 });
    expect(out[8]).toMatchObject({ kind: Kind.ERROR, id: 99, code: ErrorCode.BAD_CHECKSUM });
  });
});
