import { beforeAll, expect, test } from 'vitest';
import { connect, type Client } from '../src/client/index.js';
import { ErrorCode, ProtocolError } from '../src/protocol/index.js';
import { ReferenceServer, useReferenceServerAndClient } from './fixtures/protocol-server.js';

const env = useReferenceServerAndClient();
let server: ReferenceServer;
let client: Client;
beforeAll(() => {
  server = env.server();
  client = env.client();
});

test('a request that outlives its timeout rejects with a local TIMEOUT and a late reply is dropped', async () => {
  const err = await client.request('delay', { ms: 300, value: 'late' }, { timeout: 30 }).catch((e) => e);
  expect(err).toBeInstanceOf(ProtocolError);
  expect(err.code).toBe(ErrorCode.TIMEOUT);
  expect(err.remote).toBe(false);
  expect(client.inFlight).toBe(0);
  // The server still answers the delayed request first (one turn at a time);
  // the next request must get its own reply, not the late one.
  const reply = await client.request('echo', 'mine');
  expect(reply.body).toBe('mine');
});

test('the default timeout comes from options.requestTimeout', async () => {
  const c = await connect({ port: server.port, requestTimeout: 25 });
  try {
    const err = await c.request('delay', { ms: 300 }).catch((e) => e);
    expect(err.code).toBe(ErrorCode.TIMEOUT);
    expect(err.message).toContain('25 ms');
  } finally {
    await c.close();
  }
});

test('aborting the signal rejects the request with ABORTED carrying the reason', async () => {
  const ac = new AbortController();
  const pending = client.request('delay', { ms: 300 }, { signal: ac.signal });
  setTimeout(() => ac.abort(new Error('user went away')), 10);
  const err = await pending.catch((e) => e);
  expect(err.code).toBe(ErrorCode.ABORTED);
  expect((err.cause as Error).message).toBe('user went away');
  expect(client.inFlight).toBe(0);
});

test('an already-aborted signal rejects without sending anything', async () => {
  const before = server.seen.length;
  const err = await client.request('echo-aborted', 1, { signal: AbortSignal.abort() }).catch((e) => e);
  expect(err.code).toBe(ErrorCode.ABORTED);
  // A request sent after it reaches the server (on the same connection, so
  // after anything sent before it): the aborted one is not among what arrived.
  // (Other tests' clients share the server, so count only these actions.)
  await client.request('echo', 2);
  const since = server.seen.slice(before).map((m) => m.action);
  expect(since).toContain('echo');
  expect(since).not.toContain('echo-aborted');
});

test('a timeout of 0 disables the timer', async () => {
  const c = await connect({ port: server.port, requestTimeout: 10 });
  try {
    const reply = await c.request('delay', { ms: 60, value: 'ok' }, { timeout: 0 });
    expect(reply.body).toBe('ok');
  } finally {
    await c.close();
  }
});

test('ping resolves with a non-negative round-trip time', async () => {
  const ms = await client.ping();
  expect(typeof ms).toBe('number');
  expect(ms).toBeGreaterThanOrEqual(0);
});

test('a ping can be aborted before it is sent, and aborting after it settled changes nothing', async () => {
  const err = await client.ping({ signal: AbortSignal.abort() }).catch((e) => e);
  expect(err.code).toBe(ErrorCode.ABORTED);
  const ac = new AbortController();
  const ms = await client.ping({ signal: ac.signal, timeout: 1000 });
  ac.abort(); // after it settled: nothing happens
  expect(ms).toBeGreaterThanOrEqual(0);
});
