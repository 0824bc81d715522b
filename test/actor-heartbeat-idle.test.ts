// Dead and idle connections: heartbeats find a peer that stopped answering
// (GOAWAY TIMEOUT, then close) while a live client stays; an idle connection
// is told why (GOAWAY) before the engine closes it, and so is one that
// announces a frame over maxFrameBytes.
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { type CloseInfo, ErrorCode, FrameReader, Kind, MessageDecoder, MessageEncoder, Messages } from '../src/index.js';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';
import { waitFor } from './fixtures/wait.js';

useActorServers();

/** A socket that reads and records messages but never answers anything. */
async function mute(port: number) {
  const sock = netConnect({ port, host: '127.0.0.1' });
  await once(sock, 'connect');
  const dec = new MessageDecoder();
  const got: ReturnType<MessageDecoder['decode']>[] = [];
  const reader = new FrameReader((f) => got.push(dec.decode(f)));
  sock.on('data', (d) => reader.push(d));
  const closed = once(sock, 'close');
  return { sock, got, closed };
}

describe('actor heartbeats and idle close', () => {
  it('pings a silent connection, closes it with GOAWAY TIMEOUT when it does not answer, keeps one that does', async () => {
    const s = await startServer({ heartbeatIntervalMs: 40, heartbeatTimeoutMs: 120 });
    const live = await client(s);
    const m = await mute(s.port);
    await m.closed;
    expect(m.got.some((x) => x.kind === Kind.PING)).toBe(true);
    expect(m.got.at(-1)).toMatchObject({ kind: Kind.GOAWAY, code: ErrorCode.TIMEOUT });
    expect(live.state).toBe('open'); // its client answered every PING
    expect((await live.request('echo', 'alive')).body).toBe('alive');
  });

  it('tells an idle connection why (GOAWAY) before the engine closes it', async () => {
    const s = await startServer({ idleTimeoutMs: 150 });
    const reasons: string[] = [];
    s.on('close', (_conn: number, info: CloseInfo) => reasons.push(info.reason));
    const m = await mute(s.port);
    await m.closed;
    expect(m.got).toEqual([expect.objectContaining({ kind: Kind.GOAWAY, code: ErrorCode.TIMEOUT })]);
    await waitFor(() => reasons.length === 1, 'close event');
    expect(reasons).toEqual(['idle']);
  });

  it('closes a connection the server closed (GOAWAY) whose peer reads nothing, after flushTimeoutMs', async () => {
    const s = await startServer({ flushTimeoutMs: 300 });
    const closes: Array<[number, CloseInfo]> = [];
    s.on('close', (conn: number, info: CloseInfo) => closes.push([conn, info]));
    const m = await mute(s.port);
    m.sock.pause(); // reads nothing from now on
    const enc = new MessageEncoder();
    const body = Buffer.alloc(1 << 20, 7);
    // 40 MiB of answers cannot all fit in the two sockets' buffers.
    for (let i = 1; i <= 40; i++) m.sock.write(enc.encodePrefixed(Messages.request(i, 'echo', body)));
    await waitFor(() => s.connections().length === 1 && s.stats().requests >= 40, 'requests in');
    await waitFor(() => s.stats().engine.pendingSendBytes > 0, 'answers stuck');
    const conn = s.connections()[0]!;
    expect(s.closeConnection(conn, 'bye')).toBe(true);
    await waitFor(() => closes.length === 1, 'close event');
    expect(closes[0]![1]).toMatchObject({ reason: 'idle', detail: 300 });
    expect(s.stats().engine.connections.open).toBe(0);
    m.sock.destroy();
  });

  it('tells a connection that announces a frame over maxFrameBytes why (GOAWAY FRAME_TOO_LARGE) before closing it', async () => {
    const s = await startServer({ maxFrameBytes: 100 });
    const reasons: string[] = [];
    s.on('close', (_conn: number, info: CloseInfo) => reasons.push(info.reason));
    const c = await client(s);
    const goaways: Array<{ code: number; message: string }> = [];
    c.on('goaway', (g) => goaways.push(g));
    const e = await c.request('echo', 'x'.repeat(300)).then(
      () => null,
      (err: Error) => err,
    );
    expect(e?.message).toBe('connection closed after GOAWAY 17 (a frame announced more than maxFrameBytes (100) bytes)');
    expect(goaways).toEqual([expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE })]);
    await waitFor(() => reasons.length === 1, 'close event');
    expect(reasons).toEqual(['frame-too-large']);
  });
});
