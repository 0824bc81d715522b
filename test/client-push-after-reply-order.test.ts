import { beforeAll, expect, test } from 'vitest';
import { connect, type Client, type Push } from '../src/client/index.js';
import { ReferenceServer, useReferenceServerAndClient } from './fixtures/protocol-server.js';
import { waitFor } from './fixtures/wait.js';

const env = useReferenceServerAndClient();
let server: ReferenceServer;
let client: Client;
beforeAll(() => {
  server = env.server();
  client = env.client();
});

test("pushes queued during a turn are observed after that turn's reply, in order", async () => {
  const log: string[] = [];
  const onPush = (p: Push<{ i: number }>): void => void log.push(`${p.topic}${p.body.i}`);
  client.on('push', onPush);
  await client.request<{ pushed: number }>('push', { count: 5, topic: 'p' }).then((r) => log.push(`reply${r.body.pushed}`));
  await waitFor(() => log.length === 6, 'five pushes');
  client.off('push', onPush);
  expect(log).toEqual(['reply5', 'p0', 'p1', 'p2', 'p3', 'p4']);
});

test('pipelined requests: replies and pushes are observed in wire order', async () => {
  const log: string[] = [];
  const onPush = (p: Push<{ i: number }>): void => void log.push(`${p.topic}${p.body.i}`);
  client.on('push', onPush);
  await Promise.all([
    client.request('push', { count: 2, topic: 'a' }).then(() => log.push('r1')),
    client.request('echo', 'x').then(() => log.push('r2')),
    client.request('push', { count: 3, topic: 'b' }).then(() => log.push('r3')),
  ]);
  await waitFor(() => log.length === 8, 'three replies and five pushes');
  client.off('push', onPush);
  expect(log).toEqual(['r1', 'a0', 'a1', 'r2', 'r3', 'b0', 'b1', 'b2']);
});

test('the async iterator yields the same pushes in the same order as the events', async () => {
  const events: number[] = [];
  const onPush = (p: Push<{ i: number }>): void => void events.push(p.body.i);
  client.on('push', onPush);
  const iterator = client.pushes<{ i: number }>();
  await client.request('push', { count: 50 });
  const seen: number[] = [];
  for await (const push of iterator) {
    expect(push.topic).toBe('tick');
    seen.push(push.body.i);
    if (seen.length === 50) break;
  }
  client.off('push', onPush);
  expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
  expect(events).toEqual(seen);
});

test('an iterator that falls behind by more than maxQueuedPushes fails with OVERLOADED instead of growing', async () => {
  const c = await connect({ port: server.port, maxQueuedPushes: 10 });
  try {
    const iterator = c.pushes();
    let pushes = 0;
    c.on('push', () => pushes++);
    await c.request('push', { count: 20 });
    await waitFor(() => pushes === 20, 'twenty pushes');
    // The queue overflowed: it was cleared and the iterator reports why.
    await expect(iterator.next()).rejects.toMatchObject({ codeName: 'OVERLOADED' });
    expect(await iterator.next()).toEqual({ value: undefined, done: true });
  } finally {
    await c.close();
  }
});
