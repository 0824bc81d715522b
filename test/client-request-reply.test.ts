import { beforeAll, describe, expect, test } from 'vitest';
import { connect, type Client } from '../src/client/index.js';
import { ErrorCode, Flag, Kind, ProtocolError } from '../src/protocol/index.js';
import { ReferenceServer, useReferenceServerAndClient } from './fixtures/protocol-server.js';

const env = useReferenceServerAndClient();
let server: ReferenceServer;
let client: Client;
beforeAll(() => {
  server = env.server();
  client = env.client();
});

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    // Half random, half repetitive, so compression has something to do.
    b[i] = i % 64 < 32 ? x & 0xff : i & 0x0f;
  }
  return b;
}

describe('request and reply', () => {
  test('echo returns the body it was given, for every msgpack type the protocol allows', async () => {
    const body = {
      s: 'héllo', n: 42, neg: -7, f: 1.25, big: 2n ** 60n, t: true, nil: null,
      arr: [1, 'two', [3]], nested: { a: { b: { c: 'd' } } }, bin: Buffer.from([1, 2, 3]),
      when: new Date(1_700_000_000_123),
    };
    const reply = await client.request('echo', body);
    expect(reply.body).toEqual(body);
    expect(Buffer.isBuffer((reply.body as { bin: unknown }).bin)).toBe(true);
    expect(reply.attachment.length).toBe(0);
  });

  test('a request without a body gets a reply without a body', async () => {
    const reply = await client.request('echo');
    expect(reply.body).toBeUndefined();
  });

  const sizes = [0, 1, 65_536, 5 * 1024 * 1024];
  for (const size of sizes) {
    for (const compress of [false, true]) {
      for (const checksum of [false, true]) {
        test(`attachment of ${size} bytes round-trips (compress ${compress}, checksum ${checksum})`, async () => {
          const attachment = pattern(size, size + 1);
          const before = server.seen.length;
          const reply = await client.request('echo', { size }, { attachment, compress, checksum });
          expect(reply.body).toEqual({ size });
          expect(reply.attachment.equals(attachment)).toBe(true);
          const seen = server.seen[before];
          expect(seen.kind).toBe(Kind.REQUEST);
          expect((seen.flags & Flag.CHECKSUM) !== 0).toBe(checksum);
          // Only sections at or above the threshold that shrink get compressed.
          expect((seen.flags & Flag.ATTACHMENT_DEFLATE) !== 0).toBe(compress && size >= 65_536);
        });
      }
    }
  }

  test('a large reply attachment (8 MiB) arrives whole', async () => {
    const size = 8 * 1024 * 1024;
    const reply = await client.request<{ size: number }>('blob', { size });
    expect(reply.body.size).toBe(size);
    expect(reply.attachment.length).toBe(size);
    expect(reply.attachment[size - 1]).toBe((size - 1) & 0xff);
    expect(reply.attachment[12345]).toBe(12345 & 0xff);
  });

  test('a compressed large body round-trips and is compressed on the wire', async () => {
    const text = 'whirlwind '.repeat(50_000);
    const before = server.seen.length;
    const reply = await client.request('echo', { text }, { compress: 'body' });
    expect(reply.body).toEqual({ text });
    expect(server.seen[before].flags & Flag.BODY_DEFLATE).toBe(Flag.BODY_DEFLATE);
  });
});

describe('error replies', () => {
  test('a handler error rejects with the server code, message and data, marked remote', async () => {
    const err = await client.request('fail', { code: 10001, message: 'out of stock', data: { sku: 'x1' } }).catch((e) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err.code).toBe(10001);
    expect(err.codeName).toBe('APPLICATION(10001)');
    expect(err.message).toBe('out of stock');
    expect(err.data).toEqual({ sku: 'x1' });
    expect(err.remote).toBe(true);
  });

  test('a throwing handler becomes HANDLER_ERROR', async () => {
    const err = await client.request('throw').catch((e) => e);
    expect(err.code).toBe(ErrorCode.HANDLER_ERROR);
    expect(err.message).toBe('handler exploded');
  });

  test('an unknown action becomes UNKNOWN_ACTION and the connection survives', async () => {
    const err = await client.request('nope').catch((e) => e);
    expect(err.code).toBe(ErrorCode.UNKNOWN_ACTION);
    expect(err.message).toContain('nope');
    expect((await client.request('echo', 1)).body).toBe(1);
  });

  test('invalid arguments reject with a TypeError/RangeError instead of throwing', async () => {
    await expect(client.request('')).rejects.toThrow(TypeError);
    await expect(client.request('x'.repeat(256))).rejects.toThrow(RangeError);
    await expect(client.request('echo', 1, { timeout: -1 })).rejects.toThrow(/options.timeout/);
    await expect(client.request('echo', 1, { timeout: '1' as never })).rejects.toThrow(/options\.timeout must be an integer from 0 to 2147483647 \(ms; 0: none\), got "1"/);
    await expect(client.request('echo', 1, { signal: {} as never })).rejects.toThrow(/options\.signal must be an AbortSignal, got Object/);
    // ping checks the same (a bad timeout used to run with none at all).
    await expect(client.ping({ timeout: -1 })).rejects.toThrow(/options\.timeout must be an integer/);
    await expect(client.ping({ timeout: 'x' as never })).rejects.toThrow(TypeError);
    await expect(client.ping({ signal: 5 as never })).rejects.toThrow(/options\.signal must be an AbortSignal, got number/);
    expect(client.inFlight).toBe(0);
    expect((await client.request('echo', 2)).body).toBe(2);
  });

  test('connect() refuses unknown options, also inside reconnect, naming them', async () => {
    await expect(connect({ port: 1, timeout: 5 } as never)).rejects.toThrow(/^options\.timeout is not a client option$/);
    await expect(connect({ port: 1, reconnectInitialDelay: 50 } as never)).rejects.toThrow(
      /options\.reconnectInitialDelay is not a client option \(it goes in options\.reconnect: \{ initialDelay: \.\.\. \}\)/,
    );
    await expect(connect({ port: 1, reconnect: { bogus: 1 } as never })).rejects.toThrow(/options\.reconnect\.bogus is not a reconnect option/);
  });
});

describe('pipelining', () => {
  test('1000 requests sent at once on one connection all resolve with their own replies, in request order', async () => {
    const order: number[] = [];
    const promises = Array.from({ length: 1000 }, (_, i) =>
      client.request<number>('echo', i).then((r) => {
        order.push(r.body);
        return r.body;
      }),
    );
    expect(client.inFlight).toBe(1000);
    const results = await Promise.all(promises);
    expect(results).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(order).toEqual(results);
    expect(client.inFlight).toBe(0);
  });
});

describe('checksum enforcement', () => {
  test('a server that requires checksums refuses requests without one and keeps the connection', async () => {
    const strict = await ReferenceServer.start({ requireChecksum: true });
    const c = await connect({ port: strict.port });
    try {
      const err = await c.request('echo', 1).catch((e) => e);
      expect(err.code).toBe(ErrorCode.CHECKSUM_REQUIRED);
      expect(err.remote).toBe(true);
      expect((await c.request('echo', 2, { checksum: true })).body).toBe(2);
    } finally {
      await c.close();
      await strict.stop();
    }
  });
});
