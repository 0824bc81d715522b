// client.ts - the TypeScript client for the whirlwind protocol over node:net.
//
// One socket, many requests in flight (pipelining), answers matched by id.
// Writes made in the same tick are corked into one writev.  Incoming bytes
// go through FrameReader (zero-copy when a frame lies in one chunk) and
// MessageDecoder with copyBuffers off: node:net hands out a fresh buffer per
// read, so views into it stay valid.
//
// Ordering as the application sees it: frames are dispatched in wire order.
// A REPLY settles its promise at once; a PUSH is delivered in a microtask
// queued after that settlement, so `await request()` resumes before a push
// that followed the reply on the wire is emitted, and pushes keep their wire
// order among themselves.
//
// Disconnects never lose a request silently: every request and ping in
// flight is rejected with CONNECTION_CLOSED.  Requests made while no
// connection is open are rejected with NOT_CONNECTED (there is no offline
// queue); with `reconnect` on, the client keeps trying in the background.

import { EventEmitter } from 'node:events';
import { type Socket, connect as netConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { CompressOption } from '../protocol/encoder.js';
import { MessageDecoder, type DecodedMessage } from '../protocol/decoder.js';
import { MessageEncoder, Messages } from '../protocol/encoder.js';
import { ErrorCode, ProtocolError } from '../protocol/errors.js';
import { Kind } from '../protocol/layout.js';
import { assertFromServer } from '../protocol/server.js';
import { FrameReader } from '../protocol/stream.js';
import { describe } from '../protocol/defaults.js';
import { type ClientOptions, MAX_TIMER, type ResolvedClientOptions, resolveClientOptions } from './options.js';

/** Per-request options. */
export interface RequestOptions {
  /** Raw bytes sent beside the body. */
  attachment?: Uint8Array;
  /** Reject with TIMEOUT after this many ms; 0 = none.  Default: options.requestTimeout. */
  timeout?: number;
  /** Abort the wait: the promise rejects with ABORTED (the server may still run the request). */
  signal?: AbortSignal;
  /** Compress this request (default: options.compress). */
  compress?: CompressOption;
  /** Append a CRC-32 trailer (default: options.checksum). */
  checksum?: boolean;
}

/** A successful answer. */
export interface Reply<T = unknown> {
  /** The decoded body; undefined when the reply has none. */
  body: T;
  /** The attachment; empty when none. */
  attachment: Buffer;
}

/** A message the server pushed. */
export interface Push<T = unknown> {
  /** The topic ('' when none). */
  topic: string;
  body: T;
  attachment: Buffer;
}

/** Why the server said it is closing (GOAWAY). */
export interface GoAway {
  code: number;
  message: string;
  data: unknown;
}

/** Connection state. */
export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

interface Pending {
  resolve(reply: Reply): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | null;
  signal: AbortSignal | null;
  onAbort: (() => void) | null;
}

interface PendingPing {
  resolve(ms: number): void;
  reject(error: Error): void;
  start: number;
  timer: NodeJS.Timeout | null;
}

/**
 * Events:
 * - `'push'` `(push: Push)`: a PUSH, in wire order.
 * - `'connect'` `()`: a connection opened (also after each reconnect).
 * - `'disconnect'` `(error?: Error)`: the connection closed unexpectedly.
 * - `'reconnecting'` `({ attempt, delay })`: a reconnect attempt is scheduled.
 * - `'goaway'` `(goAway: GoAway)`: the server announced it is closing.
 * - `'protocolError'` `(error: ProtocolError)`: a bad or unexpected message not tied to a request.
 * - `'close'` `()`: the client is closed for good (close() or reconnecting gave up).
 *
 * There is no `'error'` event, so an unhandled problem never throws from an emitter.
 */
export class Client extends EventEmitter {
  readonly options: Readonly<ResolvedClientOptions>;
  #encoder: MessageEncoder;
  #decoder: MessageDecoder;
  #socket: Socket | null = null;
  #state: ClientState = 'connecting';
  #pending = new Map<number, Pending>();
  #pings = new Map<number, PendingPing>();
  #nextId = 1;
  #nextPingId = 1;
  #corked = false;
  #goAway: GoAway | null = null;
  #fatal: ProtocolError | null = null; // the server broke the protocol: do not reconnect
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #iterators = new Set<PushQueue>();
  #closed: Promise<void> | null = null;

  /** Use {@link connect}. */
  constructor(options: ClientOptions) {
    super();
    this.options = Object.freeze(resolveClientOptions(options));
    const o = this.options;
    this.#encoder = new MessageEncoder({ compressionLevel: o.compressionLevel, compressThreshold: o.compressThreshold });
    this.#decoder = new MessageDecoder({
      maxBodyBytes: o.maxBodyBytes,
      maxAttachmentBytes: o.maxAttachmentBytes,
      maxDecompressedBytes: o.maxDecompressedBytes,
      maxDepth: o.maxDepth,
      copyBuffers: false,
    });
  }

  /** Current state. */
  get state(): ClientState {
    return this.#state;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Bytes written to the socket and not yet handed to the kernel.  The
   * client does not bound this: a caller that sends faster than the network
   * drains should watch it (or `inFlight`) and wait.
   */
  get bufferedBytes(): number {
    return this.#socket?.writableLength ?? 0;
  }

  /** The last GOAWAY received on the current or last connection, if any. */
  get goAway(): GoAway | null {
    return this.#goAway;
  }

  /** Opens the first connection; resolves when it is open. */
  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#dial((error) => (error ? reject(error) : resolve()));
    });
  }

  /**
   * Calls `action` with `body`.  Resolves with the REPLY; rejects with a
   * {@link ProtocolError}: the server's ERROR code (`remote: true`), or
   * TIMEOUT / ABORTED / CONNECTION_CLOSED / NOT_CONNECTED (`remote: false`).
   */
  request<T = unknown>(action: string, body?: unknown, options: RequestOptions = {}): Promise<Reply<T>> {
    return new Promise<Reply<T>>((resolve, reject) => {
      const bad = badCallOptions(options);
      if (bad) {
        reject(bad);
        return;
      }
      const signal = options.signal ?? null;
      if (signal?.aborted) {
        reject(new ProtocolError(ErrorCode.ABORTED, `request "${action}" aborted before it was sent`, { cause: signal.reason }));
        return;
      }
      if (this.#state !== 'open' || this.#goAway !== null || this.#fatal !== null) {
        reject(this.#notConnected());
        return;
      }
      const id = this.#allocateId();
      let frame: Buffer;
      try {
        frame = this.#encoder.encodePrefixed(
          Messages.request(id, action, body, {
            attachment: options.attachment,
            compress: options.compress ?? this.options.compress,
            checksum: options.checksum ?? this.options.checksum,
          }),
        );
      } catch (error) {
        reject(error);
        return;
      }
      const timeout = options.timeout ?? this.options.requestTimeout;
      const p: Pending = {
        resolve: resolve as (reply: Reply) => void,
        reject,
        timer: null,
        signal,
        onAbort: null,
      };
      if (timeout > 0) {
        p.timer = setTimeout(() => {
          this.#settle(id)?.reject(
            new ProtocolError(ErrorCode.TIMEOUT, `request ${id} "${action}" got no answer within ${timeout} ms`, { requestId: id }),
          );
        }, timeout);
      }
      if (signal !== null) {
        p.onAbort = () => {
          this.#settle(id)?.reject(new ProtocolError(ErrorCode.ABORTED, `request ${id} "${action}" aborted`, { requestId: id, cause: signal.reason }));
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.#pending.set(id, p);
      this.#write(frame);
    });
  }

  /** Sends a PING; resolves with the round-trip time in ms. */
  ping(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const bad = badCallOptions(options);
      if (bad) {
        reject(bad);
        return;
      }
      if (this.#state !== 'open' || this.#goAway !== null || this.#fatal !== null) {
        reject(this.#notConnected());
        return;
      }
      if (options.signal?.aborted) {
        reject(new ProtocolError(ErrorCode.ABORTED, 'ping aborted before it was sent', { cause: options.signal.reason }));
        return;
      }
      const id = this.#nextPingId;
      this.#nextPingId = id === 0xffff_ffff ? 1 : id + 1;
      const signal = options.signal;
      const onAbort = (): void => fail(new ProtocolError(ErrorCode.ABORTED, `ping ${id} aborted`, { cause: signal?.reason }));
      const cleanup = (): void => {
        if (p.timer) clearTimeout(p.timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const p: PendingPing = {
        resolve: (ms) => {
          cleanup();
          resolve(ms);
        },
        reject: (error) => {
          cleanup();
          reject(error);
        },
        start: performance.now(),
        timer: null,
      };
      const timeout = options.timeout ?? this.options.requestTimeout;
      const fail = (error: ProtocolError): void => {
        if (this.#pings.get(id) !== p) return;
        this.#pings.delete(id);
        p.reject(error);
      };
      if (timeout > 0) p.timer = setTimeout(() => fail(new ProtocolError(ErrorCode.TIMEOUT, `ping ${id} got no PONG within ${timeout} ms`)), timeout);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pings.set(id, p);
      this.#write(this.#encoder.encodePrefixed(Messages.ping(id)));
    });
  }

  /**
   * Pushes as an async iterator, from now on, in wire order.  Ends when the
   * client closes; fails with OVERLOADED if more than maxQueuedPushes wait
   * unread.  Several iterators each get every push.
   */
  pushes<T = unknown>(): AsyncIterableIterator<Push<T>> {
    const queue = new PushQueue(this.options.maxQueuedPushes, (q) => this.#iterators.delete(q));
    if (this.#state === 'closed') queue.end();
    else this.#iterators.add(queue);
    return queue as unknown as AsyncIterableIterator<Push<T>>;
  }

  /** Same as {@link pushes}. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Push> {
    return this.pushes();
  }

  /**
   * Closes for good: sends GOAWAY (code 0), ends the socket, rejects what
   * is in flight with CONNECTION_CLOSED, ends push iterators.  Resolves when
   * the socket has closed.  Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#closed;
    this.#closed = new Promise<void>((resolve) => {
      const wasState = this.#state;
      this.#state = 'closed';
      if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
      this.#failInFlight(new ProtocolError(ErrorCode.CONNECTION_CLOSED, 'the client was closed'));
      const socket = this.#socket;
      const finish = (): void => {
        this.#endIterators();
        this.emit('close');
        resolve();
      };
      if (socket !== null && !socket.destroyed) {
        socket.once('close', finish);
        if (wasState === 'open') {
          try {
            socket.write(this.#encoder.encodePrefixed(Messages.goAway(ErrorCode.NONE, 'client closing')));
          } catch {
            // The socket may already be failing; close anyway.
          }
        }
        socket.end();
        // A peer that never closes its side must not keep us open.
        setTimeout(() => socket.destroy(), 1000).unref();
      } else finish();
    });
    return this.#closed;
  }

  // -------------------------------------------------------------------------

  #notConnected(): ProtocolError {
    const why = this.#goAway ? ` (server sent GOAWAY ${this.#goAway.code}: ${this.#goAway.message})` : '';
    return new ProtocolError(ErrorCode.NOT_CONNECTED, `client is ${this.#state}${why}`);
  }

  #allocateId(): number {
    let id = this.#nextId;
    while (this.#pending.has(id)) id = id === 0xffff_ffff ? 1 : id + 1;
    this.#nextId = id === 0xffff_ffff ? 1 : id + 1;
    return id;
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (p === undefined) return undefined;
    this.#pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
    return p;
  }

  #write(frame: Buffer): void {
    const socket = this.#socket;
    if (socket === null || socket.destroyed) return;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        socket.uncork();
      });
    }
    socket.write(frame);
  }

  #dial(done: ((error?: Error) => void) | null): void {
    const o = this.options;
    const socket = netConnect({ host: o.host, port: o.port, noDelay: o.noDelay });
    this.#socket = socket;
    this.#goAway = null;
    this.#fatal = null;
    let opened = false;
    const timer = setTimeout(() => {
      socket.destroy(new ProtocolError(ErrorCode.NOT_CONNECTED, `could not connect to ${o.host}:${o.port} within ${o.connectTimeout} ms`));
    }, o.connectTimeout);
    const reader = new FrameReader((frame) => this.#onFrame(frame), { maxFrameBytes: o.maxFrameBytes });
    const heartbeat = o.heartbeatInterval > 0 ? new Heartbeat(o.heartbeatInterval, o.heartbeatTimeout, socket, {
      ping: () => this.#write(this.#encoder.encodePrefixed(Messages.ping(this.#heartbeatPingId()))),
    }) : null;
    socket.on('connect', () => {
      clearTimeout(timer);
      if (this.#state === 'closed') {
        socket.destroy();
        return;
      }
      opened = true;
      heartbeat?.start();
      this.#state = 'open';
      this.#attempt = 0;
      this.emit('connect');
      done?.();
      done = null;
    });
    socket.on('data', (chunk: Buffer) => {
      heartbeat?.heard();
      try {
        reader.push(chunk);
      } catch (error) {
        // FRAME_TOO_LARGE: the framing is broken, nothing after it can be trusted.
        this.#fatal = error as ProtocolError;
        this.emit('protocolError', error);
        socket.destroy();
      }
    });
    let lastError: Error | undefined;
    socket.on('error', (error) => {
      lastError = error;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      heartbeat?.stop();
      if (this.#socket === socket) this.#socket = null;
      if (!opened) {
        const error = lastError ?? new ProtocolError(ErrorCode.NOT_CONNECTED, `connection to ${o.host}:${o.port} closed before it opened`);
        if (done) {
          // The first connect: report it; a later attempt: keep trying.
          this.#state = 'closed';
          done(error);
          done = null;
          this.#endIterators();
          return;
        }
        if (this.#state !== 'closed') this.#scheduleReconnect(error);
        return;
      }
      const goAway = this.#goAway;
      const fatal = this.#fatal;
      const why = goAway
        ? `after GOAWAY ${goAway.code} (${goAway.message})`
        : fatal
          ? `by this client: the server broke the protocol (${fatal.message})`
          : lastError
            ? `(${lastError.message})`
            : 'by the server';
      this.#failInFlight(new ProtocolError(ErrorCode.CONNECTION_CLOSED, `connection closed ${why}`, { cause: lastError }));
      if (this.#state === 'closed') return; // close() handles the rest
      this.emit('disconnect', lastError);
      const retryable =
        this.#fatal === null && (goAway === null || goAway.code === ErrorCode.NONE || goAway.code === ErrorCode.SHUTTING_DOWN);
      if (o.reconnect !== null && retryable) this.#scheduleReconnect(lastError);
      else this.#finalClose();
    });
  }

  /** An id for a heartbeat PING: from the ping() sequence, so no PONG is mistaken for another's. */
  #heartbeatPingId(): number {
    const id = this.#nextPingId;
    this.#nextPingId = id === 0xffff_ffff ? 1 : id + 1;
    return id;
  }

  #scheduleReconnect(error: Error | undefined): void {
    const r = this.options.reconnect;
    if (r === null) return this.#finalClose();
    this.#attempt++;
    if (r.maxAttempts > 0 && this.#attempt > r.maxAttempts) {
      this.emit('protocolError', new ProtocolError(ErrorCode.NOT_CONNECTED, `gave up reconnecting after ${r.maxAttempts} attempts`, { cause: error }));
      return this.#finalClose();
    }
    const base = Math.min(r.maxDelay, r.initialDelay * r.factor ** (this.#attempt - 1));
    const delay = Math.max(0, Math.round(base * (1 + r.jitter * (Math.random() * 2 - 1))));
    this.#state = 'reconnecting';
    this.emit('reconnecting', { attempt: this.#attempt, delay });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#state === 'reconnecting') this.#dial(null);
    }, delay);
  }

  #finalClose(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closed = Promise.resolve();
    this.#endIterators();
    this.emit('close');
  }

  #failInFlight(error: ProtocolError): void {
    for (const id of [...this.#pending.keys()]) {
      const p = this.#settle(id);
      p?.reject(new ProtocolError(error.code, error.message, { requestId: id, cause: error.cause }));
    }
    for (const [id, p] of this.#pings) {
      this.#pings.delete(id);
      p.reject(new ProtocolError(error.code, error.message, { cause: error.cause }));
    }
  }

  #endIterators(): void {
    for (const q of this.#iterators) q.end();
    this.#iterators.clear();
  }

  #onFrame(frame: Buffer): void {
    if (frame.length === 0) return; // keep-alive
    let msg: DecodedMessage;
    try {
      msg = assertFromServer(this.#decoder.decode(frame));
    } catch (error) {
      this.#onBadMessage(error as ProtocolError);
      return;
    }
    switch (msg.kind) {
      case Kind.REPLY:
        // A late reply (after a timeout or abort) finds nothing and is dropped.
        this.#settle(msg.id)?.resolve({ body: msg.body, attachment: msg.attachment });
        break;
      case Kind.ERROR: {
        const b = errorBody(msg.body);
        const error = new ProtocolError(msg.code, b.message, { requestId: msg.id, remote: true, data: b.data, kind: Kind.ERROR });
        const p = msg.id !== 0 ? this.#settle(msg.id) : undefined;
        if (p) p.reject(error);
        else this.emit('protocolError', error);
        break;
      }
      case Kind.PUSH: {
        const push: Push = { topic: msg.action, body: msg.body, attachment: msg.attachment };
        queueMicrotask(() => this.#deliverPush(push));
        break;
      }
      case Kind.PING:
        // Not while the server is not reading: the PONG would wait behind
        // what is buffered anyway, and a server that sends PINGs and reads
        // nothing would grow the buffer without bound.
        if ((this.#socket?.writableLength ?? 0) <= PONG_BUFFER_LIMIT) this.#write(this.#encoder.encodePrefixed(Messages.pong(msg.id)));
        break;
      case Kind.PONG: {
        const p = this.#pings.get(msg.id);
        if (p) {
          this.#pings.delete(msg.id);
          p.resolve(performance.now() - p.start);
        }
        break;
      }
      case Kind.GOAWAY: {
        const b = errorBody(msg.body);
        this.#goAway = { code: msg.code, message: b.message, data: b.data };
        this.emit('goaway', this.#goAway);
        // The server closes after GOAWAY; end our side too so nothing lingers.
        this.#socket?.end();
        break;
      }
    }
  }

  #onBadMessage(error: ProtocolError): void {
    if (error.fatal) {
      // Not our protocol or version: tell the server why and hang up.
      this.#fatal = error;
      this.emit('protocolError', error);
      const socket = this.#socket;
      if (socket) {
        this.#write(this.#encoder.encodePrefixed(Messages.goAway(error.code, error.message)));
        socket.end();
        // Closed for good a moment later whatever the peer does (a
        // half-close alone left the client 'open', its requests hanging, when
        // the peer kept its side open).  The moment lets the GOAWAY arrive:
        // destroying at once could reset the connection before it is read.
        setTimeout(() => socket.destroy(), FATAL_CLOSE_GRACE_MS).unref();
      }
      return;
    }
    // A damaged answer to a request we wait for fails that request, so its
    // caller learns about it instead of waiting for a timeout.
    const p = error.requestId !== 0 ? this.#settle(error.requestId) : undefined;
    if (p) p.reject(error);
    else this.emit('protocolError', error);
  }

  #deliverPush(push: Push): void {
    this.emit('push', push);
    for (const q of this.#iterators) q.put(push);
  }
}

/** How long after a fatal protocol error the client waits for the peer to close before it destroys the socket. */
const FATAL_CLOSE_GRACE_MS = 500;
/** A server's PING is answered only while at most this much waits unsent (bytes). */
const PONG_BUFFER_LIMIT = 64 * 1024;

function errorBody(body: unknown): { message: string; data: unknown } {
  if (body !== null && typeof body === 'object') {
    const b = body as { message?: unknown; data?: unknown };
    return { message: typeof b.message === 'string' ? b.message : '', data: b.data };
  }
  return { message: '', data: undefined };
}

/**
 * The client's heartbeat on one socket.  Any byte from the server counts as
 * a sign of life.  After `interval` ms of silence it sends a PING; when
 * `timeout` ms more pass with still nothing, the connection is dead (a peer
 * gone behind NAT, a half-open socket): it is destroyed with a TIMEOUT
 * error, which fails what is in flight and lets `reconnect` take over.  One
 * unref'd timer per socket, re-armed lazily (no timer churn per byte).
 */
class Heartbeat {
  #last = 0;
  #pingAt = 0; // when the outstanding heartbeat PING was sent; 0 = none
  #timer: NodeJS.Timeout | null = null;
  readonly #interval: number;
  readonly #timeout: number;
  readonly #socket: Socket;
  readonly #io: { ping(): void };

  constructor(interval: number, timeout: number, socket: Socket, io: { ping(): void }) {
    this.#interval = interval;
    this.#timeout = timeout;
    this.#socket = socket;
    this.#io = io;
  }

  start(): void {
    this.#last = performance.now();
    this.#arm(this.#interval);
  }

  heard(): void {
    this.#last = performance.now();
    this.#pingAt = 0;
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(this.#check, Math.max(1, Math.ceil(ms)));
    this.#timer.unref();
  }

  #check = (): void => {
    this.#timer = null;
    if (this.#socket.destroyed) return;
    const now = performance.now();
    if (this.#pingAt !== 0) {
      const waited = now - this.#pingAt;
      if (waited >= this.#timeout) {
        this.#socket.destroy(
          new ProtocolError(ErrorCode.TIMEOUT, `heartbeat: nothing from the server for ${Math.round(now - this.#last)} ms (no PONG within ${this.#timeout} ms)`),
        );
        return;
      }
      this.#arm(this.#timeout - waited);
      return;
    }
    const quiet = now - this.#last;
    if (quiet < this.#interval) {
      this.#arm(this.#interval - quiet);
      return;
    }
    this.#pingAt = now;
    this.#io.ping();
    this.#arm(this.#timeout);
  };
}

/** The queue behind one push iterator. */
class PushQueue implements AsyncIterableIterator<Push> {
  #items: Push[] = [];
  #waiting: { resolve(r: IteratorResult<Push>): void; reject(e: Error): void } | null = null;
  #done = false;
  #error: Error | null = null;
  readonly #limit: number;
  readonly #onDone: (q: PushQueue) => void;

  constructor(limit: number, onDone: (q: PushQueue) => void) {
    this.#limit = limit;
    this.#onDone = onDone;
  }

  put(push: Push): void {
    if (this.#done) return;
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = null;
      w.resolve({ value: push, done: false });
      return;
    }
    if (this.#items.length >= this.#limit) {
      this.#error = new ProtocolError(ErrorCode.OVERLOADED, `push iterator fell behind by more than maxQueuedPushes (${this.#limit})`);
      this.#items = [];
      this.#finish();
      return;
    }
    this.#items.push(push);
  }

  end(): void {
    this.#finish();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#onDone(this);
    const w = this.#waiting;
    this.#waiting = null;
    if (w) {
      if (this.#error && this.#items.length === 0) {
        const e = this.#error;
        this.#error = null;
        w.reject(e);
      } else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<Push>> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.#error) {
      const e = this.#error;
      this.#error = null;
      return Promise.reject(e);
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Push>> {
    this.#items = [];
    this.#error = null;
    this.#finish();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * Connects to a whirlwind server and resolves with an open {@link Client}.
 * Rejects (with the socket error, or NOT_CONNECTED on timeout) when the first
 * connection fails, whatever `reconnect` says.
 */
export async function connect(options: ClientOptions): Promise<Client> {
  const client = new Client(options);
  await client.open();
  return client;
}

/** The TypeError for a bad `timeout` or `signal` of request()/ping(), checked before anything is started. */
function badCallOptions(options: { timeout?: unknown; signal?: unknown }): TypeError | null {
  if (options === null || typeof options !== 'object') return new TypeError(`options must be an object, got ${options === null ? 'null' : typeof options}`);
  const t = options.timeout;
  if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > MAX_TIMER)) {
    return new TypeError(`options.timeout must be an integer from 0 to ${MAX_TIMER} (ms; 0: none), got ${describe(t)}`);
  }
  const s = options.signal;
  if (s !== undefined && s !== null && !(s instanceof AbortSignal)) {
    return new TypeError(`options.signal must be an AbortSignal, got ${typeof s === 'object' ? ((s as object).constructor?.name ?? 'an object') : typeof s}`);
  }
  return null;
}
