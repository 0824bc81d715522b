// The chat example (npm start) does what its README session shows.
import { describe, expect, it } from 'vitest';
import { ErrorCode, type Push, listen } from '../src/index.js';
import { connect } from '../src/client/index.js';
import { waitFor } from './fixtures/wait.js';

describe('examples/chat', () => {
  it('logs in, joins a room, says, tells, answers who, and announces leaving', async () => {
    const server = await listen({ actor: new URL('../examples/chat/actor.mjs', import.meta.url), port: 0, minWorkers: 1, maxWorkers: 2 });
    const ada = await connect({ port: server.port });
    const bob = await connect({ port: server.port });
    try {
      const adaGot: Push[] = [];
      const bobGot: Push[] = [];
      ada.on('push', (p) => adaGot.push(p));
      bob.on('push', (p) => bobGot.push(p));
      await expect(ada.request('join', { room: 'tea' })).rejects.toMatchObject({ code: 10001 });
      expect((await ada.request('login', { name: 'ada' })).body).toEqual({ name: 'ada', online: 2 });
      await expect(bob.request('login', { name: 'ada' })).rejects.toMatchObject({ code: 10002 });
      await bob.request('login', { name: 'bob' });
      await ada.request('join', { room: 'tea' });
      await bob.request('join', { room: 'tea' });
      await ada.request('say', { room: 'tea', text: 'hello, bob' });
      await bob.request('tell', { to: 'ada', text: 'psst' });
      await expect(bob.request('tell', { to: 'carol', text: '?' })).rejects.toMatchObject({ code: 10003 });
      expect((await bob.request('who')).body).toEqual({ online: 2, me: 'bob', rooms: ['tea'] });
      await bob.close();
      await waitFor(() => adaGot.some((p) => p.topic === 'offline'), 'offline push');
      expect(adaGot.map((p) => [p.topic, p.body])).toEqual([
        ['online', { name: 'bob' }],
        ['joined', { room: 'tea', name: 'bob' }],
        ['said', { room: 'tea', name: 'ada', text: 'hello, bob' }],
        ['told', { from: 'bob', text: 'psst' }],
        ['offline', { name: 'bob' }],
      ]);
      expect(bobGot.map((p) => p.topic)).toEqual(['said']);
      await expect(ada.request('nope')).rejects.toMatchObject({ code: ErrorCode.UNKNOWN_ACTION });
    } finally {
      await ada.close();
      await bob.close();
      await server.close({ deadlineMs: 500 });
    }
  });
});
