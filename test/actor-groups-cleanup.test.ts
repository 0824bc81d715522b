// Groups: join, leave, push to a group (with and without the sender), and
// membership cleaned up when a connection closes, with the onClosed hook
// still able to push to others.
import { describe, expect, it } from 'vitest';
import type { Push } from '../src/index.js';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';
import { waitFor } from './fixtures/wait.js';

useActorServers();

describe('actor groups', () => {
  it('delivers group pushes to members only and forgets a closed connection', async () => {
    const s = await startServer();
    const [a, b, c, watcher] = await Promise.all([0, 1, 2, 3].map(() => client(s)));
    const id = async (x: typeof a) => (await x!.request<{ conn: number }>('whoami')).body.conn;
    const [ia, ib, ic] = [await id(a), await id(b), await id(c)];
    const got = new Map<string, Push[]>([['a', []], ['b', []], ['c', []], ['w', []]]);
    a!.on('push', (p) => got.get('a')!.push(p));
    b!.on('push', (p) => got.get('b')!.push(p));
    c!.on('push', (p) => got.get('c')!.push(p));
    watcher!.on('push', (p) => got.get('w')!.push(p));
    await watcher!.request('join', { group: 'observers' });
    await Promise.all([a, b, c].map((x) => x!.request('join', { group: 'room' })));
    expect((await a!.request('members', { group: 'room' })).body).toEqual([ia, ib, ic].sort((x, y) => x - y));

    await a!.request('say', { group: 'room', text: 'hi all' });
    await a!.request('say', { group: 'room', text: 'not me', exceptSelf: true });
    await c!.request('leave', { group: 'room' });
    await b!.request('say', { group: 'room', text: 'after c left' });
    await waitFor(() => got.get('a')!.length === 2 && got.get('b')!.length === 3 && got.get('c')!.length === 2, 'room pushes');
    const texts = (k: string) => got.get(k)!.map((p) => (p.body as { text: string }).text);
    expect(texts('a')).toEqual(['hi all', 'after c left']);
    expect(texts('b')).toEqual(['hi all', 'not me', 'after c left']);
    expect(texts('c')).toEqual(['hi all', 'not me']);
    expect(got.get('w')).toEqual([]);

    // Closing b removes it from every group; its onClosed hook tells the observers.
    await b!.close();
    await waitFor(() => got.get('w')!.length === 1, 'the closed hook push');
    expect(got.get('w')![0]).toMatchObject({ topic: 'closed', body: { conn: ib, n: 0 } });
    expect(s.groupMembers('room')).toEqual([ia]);
    await a!.close();
    await waitFor(() => s.groupMembers('room').length === 0, 'a gone from room');
    expect(s.stats().groups).toBe(1); // only 'observers' is left; empty groups are dropped
    await c!.request('say', { group: 'room', text: 'anyone?' });
    expect(s.isConnected(ia)).toBe(false);
    expect((await c!.request('members', { group: 'room' })).body).toEqual([]);
  });
});
