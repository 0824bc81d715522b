// The reference server's use of the server helpers, seen from a raw socket:
// what a peer that breaks the rules gets back, and whether the connection
// survives.
import { type Socket, connect as netConnect } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  type DecodedMessage,
  ErrorCode,
  FrameReader,
  Kind,
  MessageDecoder,
  MessageEncoder,
  Messages,
} from '../src/protocol/index.js';
import { ReferenceServer } from './fixtures/protocol-server.js';

const encoder = new MessageEncoder();
const decoder = new MessageDecoder();
let server: ReferenceServer;

beforeAll(async () => {
  server = await ReferenceServer.start({ maxBodyBytes: 1024 });
});
afterAll(() => server.stop());

/** A raw connection that collects decoded messages and notices the close. */
async function raw(): Promise<{ socket: Socket; next(): Promise<DecodedMessage>; closed: Promise<unknown> }> {
  const socket = netConnect({ port: server.port, host: '127.0.0.1' });
  await once(socket, 'connect');
  const inbox: DecodedMessage[] = [];
  const waiters: Array<(m: DecodedMessage) => void> = [];
  const reader = new FrameReader((f) => {
    const m = decoder.decode(f);
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  socket.on('data', (c) => reader.push(c));
  const closed = once(socket, 'close');
  return {
    socket,
    next: () => (inbox.length ? Promise.resolve(inbox.shift()!) : new Promise((r) => waiters.push(r))),
    closed,
  };
}

function prefixed(frame: Buffer): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32LE(frame.length);
  return Buffer.concat([p, frame]);
}

test('a request with a bad checksum gets ERROR BAD_CHECKSUM with its id and the connection keeps working', async () => {
  const c = await raw();
  const bad = encoder.encode(Messages.request(41, 'echo', 'hi', { checksum: true }));
  bad[bad.length - 6]! ^= 0xff;
  c.socket.write(prefixed(bad));
  const err = await c.next();
  expect(err).toMatchObject({ kind: Kind.ERROR, id: 41, code: ErrorCode.BAD_CHECKSUM });
  c.socket.write(encoder.encodePrefixed(Messages.request(42, 'echo', 'ok')));
  expect(await c.next()).toMatchObject({ kind: Kind.REPLY, id: 42, body: 'ok' });
  c.socket.destroy();
});

test('an unknown version gets GOAWAY UNKNOWN_VERSION naming the supported versions, then the server closes', async () => {
  const c = await raw();
  const v2 = encoder.encode(Messages.request(1, 'echo', 1));
  v2[1] = 2;
  c.socket.write(prefixed(v2));
  const goaway = await c.next();
  expect(goaway).toMatchObject({ kind: Kind.GOAWAY, code: ErrorCode.UNKNOWN_VERSION, body: { data: { supportedVersions: [1] } } });
  await c.closed;
});

test('a peer that is not speaking the protocol gets GOAWAY BAD_MAGIC and is closed', async () => {
  const c = await raw();
  c.socket.write(prefixed(Buffer.from('GET / HTTP/1.1\r\n\r\n')));
  expect(await c.next()).toMatchObject({ kind: Kind.GOAWAY, code: ErrorCode.BAD_MAGIC });
  await c.closed;
});

test('a frame above maxFrameBytes gets GOAWAY FRAME_TOO_LARGE and is closed', async () => {
  const c = await raw();
  const p = Buffer.alloc(4);
  p.writeUInt32LE(0xffffffff);
  c.socket.write(p);
  expect(await c.next()).toMatchObject({ kind: Kind.GOAWAY, code: ErrorCode.FRAME_TOO_LARGE });
  await c.closed;
});

test('a body above the server limit gets BODY_TOO_LARGE; zero-length frames are ignored; PING gets PONG', async () => {
  const c = await raw();
  c.socket.write(Buffer.alloc(4)); // zero-length frame
  c.socket.write(encoder.encodePrefixed(Messages.request(5, 'echo', 'x'.repeat(2000))));
  expect(await c.next()).toMatchObject({ kind: Kind.ERROR, id: 5, code: ErrorCode.BODY_TOO_LARGE });
  c.socket.write(encoder.encodePrefixed(Messages.ping(77)));
  expect(await c.next()).toMatchObject({ kind: Kind.PONG, id: 77 });
  c.socket.destroy();
});

test('a client sending a PUSH gets UNEXPECTED_KIND with id 0', async () => {
  const c = await raw();
  c.socket.write(encoder.encodePrefixed(Messages.push('x', 1)));
  expect(await c.next()).toMatchObject({ kind: Kind.ERROR, id: 0, code: ErrorCode.UNEXPECTED_KIND });
  c.socket.destroy();
});
