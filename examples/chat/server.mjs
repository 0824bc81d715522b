#!/usr/bin/env node
// The chat server: `npm start` runs it on 127.0.0.1:7000 with the defaults.
//
//   node examples/chat/server.mjs [--port <p>] [--host <addr>]
import { parseArgs } from 'node:util';
import { listen } from 'whirlwind';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '7000' }, host: { type: 'string', default: '127.0.0.1' } },
});

const server = await listen({ actor: new URL('./actor.mjs', import.meta.url), host: values.host, port: Number(values.port) });
server.on('turnFailed', (f) => console.error(`turn failed: conn ${f.conn} ${f.action || '(hook)'}: ${f.message}`));
console.log(`chat listening on ${server.address}:${server.port} backend=${server.backend} workers=${server.options.minWorkers}..${server.options.maxWorkers}`);

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    console.log('chat: shutting down');
    server.close({ deadlineMs: 2000 }).then(() => process.exit(0));
  });
}
