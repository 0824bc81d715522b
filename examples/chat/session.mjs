#!/usr/bin/env node
// A scripted session against the chat server with the TypeScript client:
// two users, a room, a private message, who is online.
//
//   node examples/chat/session.mjs [--port <p>]
import { parseArgs } from 'node:util';
import { connect } from 'whirlwind';

const { values } = parseArgs({ options: { port: { type: 'string', default: '7000' } } });
const port = Number(values.port);

const ada = await connect({ port });
const bob = await connect({ port });
for (const [who, c] of [['ada', ada], ['bob', bob]]) {
  c.on('push', (p) => console.log(`  ${who} <- push ${p.topic} ${JSON.stringify(p.body)}`));
}
const call = async (who, c, action, body) => {
  try {
    const { body: reply } = await c.request(action, body);
    console.log(`${who} -> ${action} ${JSON.stringify(body)}  => ${JSON.stringify(reply)}`);
  } catch (e) {
    console.log(`${who} -> ${action} ${JSON.stringify(body)}  => ERROR ${e.code} ${e.message}`);
  }
};

await call('ada', ada, 'join', { room: 'tea' });
await call('ada', ada, 'login', { name: 'ada' });
await call('bob', bob, 'login', { name: 'bob' });
await call('ada', ada, 'join', { room: 'tea' });
await call('bob', bob, 'join', { room: 'tea' });
await call('ada', ada, 'say', { room: 'tea', text: 'hello, bob' });
await call('bob', bob, 'tell', { to: 'ada', text: 'psst' });
await call('bob', bob, 'who', {});
await call('bob', bob, 'leave', { room: 'tea' });
await new Promise((r) => setTimeout(r, 50));
await bob.close();
await new Promise((r) => setTimeout(r, 50));
await ada.close();
