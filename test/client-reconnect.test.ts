import { once } from 'node:events';
import { afterEach, expect, test } from 'vitest';
import { Client, connect } from '../src/client/index.js';
import { ErrorCode } from '../src/protocol/index.js';
import { ReferenceServer } from './fixtures/protocol-server.js';
import { waitFor } from './fixtures/wait.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanup.length) await (cleanup.pop() as () => Promise<void>)();
});

async function setup(options: Partial<Parameters<typeof connect>[0]> = {}): Promise<{ server: ReferenceServer; client: Client }> {
  const server = await ReferenceServer.start();
  const client = await connect({ port: server.port, ...options });
  cleanup.push(() => server.stop(), () => client.close());
  return { server, client };
}

test('without reconnect (the default), a dropped connection rejects every request in flight and closes the client', async () => {
  const { server, client } = await setup();
  const closed = once(client, 'close');
  const inFlight = [client.request('delay', { ms: 500 }), client.request('echo', 1), client.request('echo', 2)];
  await waitFor(() => server.seen.length === 3, 'the requests at the server');
  server.dropAll();
  const results = await Promise.allSettled(inFlight);
  for (const r of results) {
    expect(r.status).toBe('rejected');
    expect((r as PromiseRejectedResult).reason.code).toBe(ErrorCode.CONNECTION_CLOSED);
  }
  await closed;
  expect(client.state).toBe('closed');
  const err = await client.request('echo', 3).catch((e) => e);
  expect(err.code).toBe(ErrorCode.NOT_CONNECTED);
});

test('with reconnect, in-flight requests are rejected, the client reconnects, and new requests succeed', async () => {
  const { server, client } = await setup({ reconnect: { initialDelay: 10, maxDelay: 50 } });
  const events: string[] = [];
  client.on('disconnect', () => events.push('disconnect'));
  client.on('reconnecting', ({ attempt }) => events.push(`reconnecting ${attempt}`));
  client.on('connect', () => events.push('connect'));
  const pending = client.request('delay', { ms: 500 });
  await waitFor(() => server.seen.length === 1, 'the request at the server');
  server.dropAll();
  const err = await pending.catch((e) => e);
  expect(err.code).toBe(ErrorCode.CONNECTION_CLOSED);
  // While reconnecting, requests fail fast instead of queueing.
  if (client.state !== 'open') expect((await client.request('echo', 0).catch((e) => e)).code).toBe(ErrorCode.NOT_CONNECTED);
  if (client.state !== 'open') await once(client, 'connect');
  expect(client.state).toBe('open');
  expect((await client.request('echo', 'again')).body).toBe('again');
  expect(server.accepted).toBe(2);
  expect(events.slice(0, 3)).toEqual(['disconnect', 'reconnecting 1', 'connect']);
});

test('reconnecting gives up after maxAttempts and closes the client', async () => {
  const { server, client } = await setup({ reconnect: { initialDelay: 5, maxDelay: 10, maxAttempts: 2 } });
  const attempts: number[] = [];
  client.on('reconnecting', ({ attempt }) => attempts.push(attempt));
  const closed = once(client, 'close');
  await server.stop(); // listener gone: every attempt is refused
  await closed;
  expect(attempts).toEqual([1, 2]);
  expect(client.state).toBe('closed');
});

test('a GOAWAY from the server is reported with its code and closes the connection', async () => {
  const { client } = await setup();
  const goaway = once(client, 'goaway');
  const closed = once(client, 'close');
  const reply = client.request('goaway');
  const [info] = await goaway;
  expect(info.code).toBe(ErrorCode.SHUTTING_DOWN);
  expect(info.message).toBe('asked to go away');
  // The goaway request itself got no reply: it is rejected, not lost.
  expect((await reply.catch((e) => e)).code).toBe(ErrorCode.CONNECTION_CLOSED);
  await closed;
  expect((await client.request('echo', 1).catch((e) => e)).code).toBe(ErrorCode.NOT_CONNECTED);
});

test('close() rejects requests in flight, tells the server with GOAWAY and ends push iterators', async () => {
  const { server, client } = await setup();
  const iterator = client.pushes();
  const next = iterator.next();
  const pending = client.request('delay', { ms: 500 }).catch((e) => e);
  await waitFor(() => server.seen.length === 1, 'the request at the server');
  await client.close();
  expect((await pending).code).toBe(ErrorCode.CONNECTION_CLOSED);
  expect(await next).toEqual({ value: undefined, done: true });
  expect(client.state).toBe('closed');
  await waitFor(() => server.seen.some((s) => s.kind === 7), 'the GOAWAY at the server');
});

test('connect() rejects when nothing listens, whatever reconnect says', async () => {
  const server = await ReferenceServer.start();
  const port = server.port;
  await server.stop();
  await expect(connect({ port, reconnect: true })).rejects.toThrow(/ECONNREFUSED/);
});

test('options are validated with messages that name the option', () => {
  expect(() => new Client({ port: 0 })).toThrow('options.port must be an integer between 1 and 65535, got 0');
  expect(() => new Client({ port: 1, requestTimeout: -1 })).toThrow(/options.requestTimeout/);
  expect(() => new Client({ port: 1, compress: 'yes' as never })).toThrow(/options.compress/);
  expect(() => new Client({ port: 1, reconnect: { factor: 0 } })).toThrow(/options.reconnect.factor/);
  expect(() => new Client({ port: 1, host: '' })).toThrow(/options.host/);
});
