// Socket actors, the basics: replies by return value and explicitly, error
// replies, bad input answered by the protocol's rules, PING, and the
// main-thread queries and commands a handler reaches through comlink.
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ErrorCode, FrameReader, Kind, MessageDecoder, MessageEncoder, Messages, ProtocolError, actorStatsToPrometheus, type GoAway } from '../src/index.js';
import { client, startServer, useActorServers } from './fixtures/actor-server.js';
import { waitFor } from './fixtures/wait.js';

useActorServers();

async function rejection(p: Promise<unknown>): Promise<ProtocolError> {
  try {
    await p;
  } catch (e) {
    return e as ProtocolError;
  }
  throw new Error('expected a rejection');
}

describe('actor request and reply', () => {
  it('replies with the return value, explicitly (with an attachment), and in request order', async () => {
    const s = await startServer();
    const c = await client(s);
    expect((await c.request('echo', { a: [1, 'x'] })).body).toEqual({ a: [1, 'x'] });
    const r = await c.request('attachment', null, { attachment: Buffer.from('abc') });
    expect(r.body).toEqual({ size: 3 });
    expect(r.attachment.toString()).toBe('abc');
    const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => c.request('echo', i)));
    expect(replies.map((x) => x.body)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('gives the handler its connection id and peer', async () => {
    const s = await startServer();
    const c = await client(s);
    const { body } = await c.request<{ conn: number; peer: { address: string; port: number; family: number } }>('whoami');
    expect(s.isConnected(body.conn)).toBe(true);
    expect(body.peer).toEqual(s.peer(body.conn));
    expect(body.peer.address).toBe('127.0.0.1');
  });

  it('answers a throwing handler with HANDLER_ERROR, a ReplyError with its code, and keeps the connection', async () => {
    const s = await startServer();
    const c = await client(s);
    const failed: unknown[] = [];
    s.on('turnFailed', (f) => failed.push(f));
    const e1 = await rejection(c.request('throw', { message: 'nope' }));
    expect(e1.code).toBe(ErrorCode.HANDLER_ERROR);
    expect(e1.message).toBe('nope');
    expect(e1.remote).toBe(true);
    const e2 = await rejection(c.request('replyError', { code: 10001, message: 'mine', data: { x: 1 } }));
    expect([e2.code, e2.message, e2.data]).toEqual([10001, 'mine', { x: 1 }]);
    const e3 = await rejection(c.request('explicitError'));
    expect([e3.code, e3.message, e3.data]).toEqual([10002, 'explicit', { why: 'because' }]);
    const e4 = await rejection(c.request('no-such-action'));
    expect(e4.code).toBe(ErrorCode.UNKNOWN_ACTION);
    // The state survived the throw (its increment counts), and onTurnFailed ran for
    // the throw only: a ReplyError or ctx.error() is an answer, not a failure.
    const st = (await c.request<{ n: number; failures: number; connected: boolean }>('state')).body;
    expect(st).toEqual({ n: 1, failures: 1, connected: true });
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ action: 'throw', code: ErrorCode.HANDLER_ERROR, message: 'nope' });
  });

  it('a ReplyError, ctx.error() or ProtocolError with a code a handler may not send is a handler failure, never that code on the wire', async () => {
    const s = await startServer();
    const c = await client(s);
    const failed: Array<{ action: string; code: number; message: string }> = [];
    s.on('turnFailed', (f) => failed.push(f));
    for (const code of [0, 1001, 5000, 70000, -1, 1.5, 'abc']) {
      const e = await rejection(c.request('replyError', { code, message: 'mine' }));
      expect(e.code).toBe(ErrorCode.HANDLER_ERROR);
      expect(e.message).toContain(`new ReplyError(): the code must be an integer from 10000 to 65535 (an application's) or from 1 to 999 (the protocol's), got ${typeof code === 'string' ? `"${code}"` : code}`);
      const e2 = await rejection(c.request('explicitErrorCode', { code }));
      expect(e2.code).toBe(ErrorCode.HANDLER_ERROR);
      expect(e2.message).toMatch(/^ctx\.error\(\): the code must be/);
    }
    expect(failed).toHaveLength(14);
    // A protocol code passes; a local one (CONNECTION_CLOSED, 1001) becomes HANDLER_ERROR.
    expect((await rejection(c.request('protocolError', { code: ErrorCode.OVERLOADED }))).code).toBe(ErrorCode.OVERLOADED);
    const local = await rejection(c.request('protocolError', { code: ErrorCode.CONNECTION_CLOSED }));
    expect([local.code, local.message]).toEqual([ErrorCode.HANDLER_ERROR, 'from a call the handler made']);
    // Valid application codes at both ends of the range still go through.
    expect((await rejection(c.request('replyError', { code: 10000, message: 'lo' }))).code).toBe(10000);
    expect((await rejection(c.request('explicitErrorCode', { code: 65535 }))).code).toBe(65535);
  });

  it('mistaken push, group and close calls throw where they are made, in a handler or on the main thread', async () => {
    const s = await startServer();
    const c = await client(s);
    const cases: Array<[string, RegExp]> = [
      ['policy-self', /push policy must be one of queue, drop-oldest, drop-new, close, coalesce \(got bogus\)/],
      ['coalesce-no-key', /push policy 'coalesce' needs a coalesceKey string/],
      ['conn', /ctx\.pushTo\(conns, \.\.\.\): conns must be a connection token or an array of them, got "abc"/],
      ['join', /ctx\.join\(\): the group must be a non-empty string, got 42/],
      ['group', /ctx\.pushToGroup\(\): the group must be a non-empty string, got undefined/],
      ['close', /ctx\.close\(reason\): reason must be a string, got an object/],
      ['topic', /topic must be at most 255 bytes of UTF-8, got 300/],
    ];
    for (const [what, message] of cases) {
      const e = await rejection(c.request('badCall', { what }));
      expect([what, e.code]).toEqual([what, ErrorCode.HANDLER_ERROR]);
      expect(e.message).toMatch(message);
    }
    const me = (await c.request<{ conn: number }>('whoami')).body.conn;
    expect(() => s.join(me, 42 as never)).toThrow(/join\(\): the group must be a non-empty string, got 42/);
    expect(() => s.pushToGroup('' as never, 't')).toThrow(/pushToGroup\(\): the group must be a non-empty string, got ""/);
    expect(() => s.closeConnection(me, { why: 1 } as never)).toThrow(/closeConnection\(conn, reason\): reason must be a string, got an object/);
    expect(() => s.push(me, 'y'.repeat(300))).toThrow(/topic must be at most 255 bytes of UTF-8/);
    expect(() => s.push(me, 42 as never)).toThrow(/topic must be a string, got number/);
    // Nothing of it reached the connection.
    expect((await c.request('echo', 'fine')).body).toBe('fine');
  });

  it('answers PING with PONG, a bad checksum with BAD_CHECKSUM in its place, a bad body with BAD_MESSAGE, and a bad magic with GOAWAY and close', async () => {
    const s = await startServer();
    const c = await client(s);
    expect(await c.ping()).toBeGreaterThanOrEqual(0);

    const enc = new MessageEncoder();
    const dec = new MessageDecoder();
    const sock = netConnect({ port: s.port, host: '127.0.0.1' });
    await once(sock, 'connect');
    const got: ReturnType<MessageDecoder['decode']>[] = [];
    const reader = new FrameReader((f) => got.push(dec.decode(f)));
    sock.on('data', (d) => reader.push(d));
    const good = (id: number) => enc.encodePrefixed(Messages.request(id, 'echo', id));
    const badCrc = enc.encodePrefixed(Messages.request(2, 'echo', 2, { checksum: true }));
    badCrc[badCrc.length - 1]! ^= 0xff;
    const badBody = enc.encodePrefixed(Messages.request(3, 'echo', 3));
    badBody[badBody.length - 1] = 0xc1; // never-used msgpack byte
    sock.write(Buffer.concat([good(1), badCrc, badBody, good(4)]));
    await waitFor(() => got.length === 4, 'four answers');
    expect(got.map((m) => [m.id, m.kind, m.code])).toEqual([
      [1, 2, 0],
      [2, 3, ErrorCode.BAD_CHECKSUM],
      [3, 3, ErrorCode.BAD_MESSAGE],
      [4, 2, 0],
    ]);
    // A PING may carry no body, attachment, action or code (protocol.md §3):
    // BAD_MESSAGE (id 0: not a request), no PONG.  A good one after still gets its PONG.
    const pingWith = (id: number, at: number, bytes: number[], extraBody: number[] = []) => {
      const f = Buffer.from(enc.encodePrefixed(Messages.ping(id)));
      for (let i = 0; i < bytes.length; i++) f[4 + at + i] = bytes[i]!;
      if (extraBody.length === 0) return f;
      const out = Buffer.concat([f, Buffer.from(extraBody)]);
      out.writeUInt32LE(out.length - 4, 0);
      return out;
    };
    sock.write(
      Buffer.concat([
        pingWith(5, 12, [1, 0, 0, 0, 1, 0, 0, 0], [0x01]), // body: bw = bl = 1, the msgpack 1
        pingWith(6, 8, [1, 0]), // code 1
        pingWith(7, 20, [1, 0, 0, 0, 1, 0, 0, 0], [0x02]), // attachment of 1 byte
        Buffer.from(enc.encodePrefixed(Messages.ping(8))),
      ]),
    );
    await waitFor(() => got.length === 8, 'four more answers');
    expect(got.slice(4).map((m) => [m.kind, m.id, m.code])).toEqual([
      [Kind.ERROR, 0, ErrorCode.BAD_MESSAGE],
      [Kind.ERROR, 0, ErrorCode.BAD_MESSAGE],
      [Kind.ERROR, 0, ErrorCode.BAD_MESSAGE],
      [Kind.PONG, 8, 0],
    ]);
    const closed = once(sock, 'close');
    const notOurs = Buffer.from(good(5));
    notOurs[4] = 0x42;
    // A good request and a bad magic in one write: the request is answered,
    // then the GOAWAY, then the close (the GOAWAY used to wait behind the
    // running turn for good, and the connection stayed open).
    sock.write(Buffer.concat([good(9), notOurs]));
    await closed;
    expect(got.slice(-2).map((m) => [m.kind, m.id, m.code])).toEqual([
      [Kind.REPLY, 9, 0],
      [Kind.GOAWAY, 0, ErrorCode.BAD_MAGIC],
    ]);
    // Everyone else carries on.
    expect((await c.request('echo', 'still here')).body).toBe('still here');
  });

  it('answers comlink queries from handlers: online count, is X connected, group members, close X with a reason', async () => {
    const s = await startServer();
    const a = await client(s);
    const b = await client(s);
    const bId = (await b.request<{ conn: number }>('whoami')).body.conn;
    expect((await a.request('online')).body).toBe(2);
    expect((await a.request('isConnected', { conn: bId })).body).toBe(true);
    await b.request('join', { group: 'g' });
    expect((await a.request('members', { group: 'g' })).body).toEqual([bId]);
    const goaway = once(b, 'goaway') as Promise<[GoAway]>;
    expect((await a.request('kick', { conn: bId, reason: 'be gone' })).body).toBe(true);
    const [g] = await goaway;
    expect(g).toMatchObject({ code: ErrorCode.NONE, message: 'be gone' });
    await waitFor(() => s.onlineCount === 1, 'b closed');
    expect((await a.request('isConnected', { conn: bId })).body).toBe(false);
    expect((await a.request('online')).body).toBe(1);
  });

  it('closes a connection after the reply when a handler asks (ctx.close), with GOAWAY first', async () => {
    const s = await startServer();
    const c = await client(s);
    const goaway = once(c, 'goaway') as Promise<[GoAway]>;
    expect((await c.request('closeMe', { reason: 'done' })).body).toBe('bye');
    expect((await goaway)[0]).toMatchObject({ code: ErrorCode.NONE, message: 'done' });
  });

  it('pushes from the main thread to one connection, a list, a group and everyone', async () => {
    const s = await startServer();
    const a = await client(s);
    const b = await client(s);
    const ids = await Promise.all([a, b].map(async (c) => (await c.request<{ conn: number }>('whoami')).body.conn));
    const seen: Array<[string, string, unknown]> = [];
    a.on('push', (p) => seen.push(['a', p.topic, p.body]));
    b.on('push', (p) => seen.push(['b', p.topic, p.body]));
    expect(s.join(ids[1]!, 'room')).toBe(true);
    expect(s.push(ids[0]!, 'one', 1)).toBe(1);
    expect(s.push(ids, 'list', 2)).toBe(2);
    expect(s.pushToGroup('room', 'group', 3)).toBe(1);
    expect(s.broadcast('all', 4)).toBe(2);
    await waitFor(() => seen.length === 6, 'six pushes');
    expect(seen.filter((x) => x[0] === 'a')).toEqual([['a', 'one', 1], ['a', 'list', 2], ['a', 'all', 4]]);
    expect(seen.filter((x) => x[0] === 'b')).toEqual([['b', 'list', 2], ['b', 'group', 3], ['b', 'all', 4]]);
    expect(s.closeConnection(ids[0]!, 'main says bye')).toBe(true);
    await waitFor(() => a.state === 'closed', 'a closed');
    expect(a.goAway).toMatchObject({ message: 'main says bye' });
  });

  it('reports per-action handler times, per-worker turns, mailbox depth and slow turns in flight', async () => {
    const s = await startServer();
    const c = await client(s);
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.request('echo', i)));
    const slow = c.request('sleep', { ms: 300, value: 1 });
    await new Promise((r) => setTimeout(r, 150));
    const during = s.stats({ slowTurnMs: 100 });
    expect(during.slowTurns).toEqual([expect.objectContaining({ conn: expect.any(Number), action: 'sleep', requests: 1 })]);
    expect(during.slowTurns[0]!.ms).toBeGreaterThanOrEqual(100);
    expect(during.mailboxItems).toBe(1);
    expect(during.deepestMailbox).toBe(1);
    await slow;
    const after = s.stats();
    expect(after.actions.echo!.requests).toBe(20);
    expect(after.actions.sleep!.requests).toBe(1);
    expect(after.actions.sleep!.maxMs).toBeGreaterThanOrEqual(250);
    expect(Object.values(after.workerTurns).reduce((a, b) => a + b, 0)).toBe(after.turns);
    expect(after.slowTurns).toEqual([]);
    // The same, as Prometheus text: every sample line well formed, after its TYPE.
    const text = actorStatsToPrometheus(after, { extraLabels: { server: 't' } });
    // (A histogram's samples are its name with _bucket, _sum or _count; actor-histograms.test.ts looks closer.)
    const declared = new Set<string>();
    for (const line of text.trimEnd().split('\n')) {
      if (line.startsWith('# HELP ')) continue;
      const t = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line);
      if (t) {
        declared.add(t[1]!);
        if (t[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) declared.add(t[1]! + suffix);
        continue;
      }
      const m = /^([a-z_]+)\{([^}]*)\} (-?\d+(\.\d+)?(e-?\d+)?)$/.exec(line);
      expect(m, line).not.toBeNull();
      expect(declared.has(m![1]!), `${m![1]} declared before use`).toBe(true);
    }
    expect(text).toMatch(/^whirlwind_actor_action_requests_total\{[^}]*action="echo"[^}]*\} 20$/m);
    expect(text).toMatch(/^whirlwind_actor_turns_total\{[^}]*\} \d+$/m);
  });
});
