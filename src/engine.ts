// engine.ts - the raw engine: whole frames in, frames out, one JS call per
// batch of completions.
//
// The I/O threads write records into one ring each (native/src/layout.h
// draws the layout); this file is the consumer.  On a wake-up it clears the
// wake flag, reads each ring's tail, handles every record up to it, and
// publishes the new head - one native-to-JS call for the whole batch.
// Sends go the other way in one buffer of entries per batch (SendBatch),
// handed to native once per drain, or once per microtask outside a drain.
// A module binding: the global `Buffer` is an accessor on globalThis, looked
// up on every frame otherwise.
import { Buffer } from 'node:buffer';
import { constants as osConstants } from 'node:os';
import { chooseBackend } from './backends.js';
import { checkLayout, LAYOUT, tokenGen, tokenSlot, tokenThread } from './layout.js';
import { loadAddon, type NativeEngineHandle } from './native.js';
import { resolveEngineOptions, type BackendName, type EngineOptions, type PeerAddress, type ResolvedEngineOptions } from './options.js';
import { viewOf } from './view.js';

export type { PeerAddress } from './options.js';

export type CloseReason =
  | 'peer'
  | 'error'
  | 'local'
  | 'local-flushed'
  | 'frame-too-large'
  | 'server-closing'
  | 'out-of-memory'
  | 'idle'
  | 'refused';

/** A snapshot of the engine's counters, summed over its I/O threads. */
export interface EngineStats {
  backend: BackendName;
  ioThreads: number;
  connections: {
    open: number;
    /** Most connections open at once, as JS saw them (opens minus closes drained from the rings). */
    peak: number;
    accepted: number;
    /** Refused by maxConnections or maxConnectionsPerAddress (never reached JS). */
    refused: number;
    /** Connections closed, by close reason. */
    closed: Record<CloseReason, number>;
  };
  /** Frames handed to JS, and their payload bytes. */
  framesIn: number;
  bytesIn: number;
  /** Send entries taken from JS, and bytes written to sockets. */
  sendsOut: number;
  bytesOut: number;
  ring: {
    /** Times an I/O thread found its ring full (and stopped reading until JS caught up). */
    stalls: number;
    /** Records waiting for ring space right now. */
    deferred: number;
    /** Bytes of the rings holding records JS has not drained yet, summed over I/O threads. */
    usedBytes: number;
    /** Ring capacity: ringBytes times the number of I/O threads. */
    capacityBytes: number;
  };
  acceptErrors: number;
  /** Sends and closes that named a connection already closed. */
  staleOps: number;
  /** I/O thread loop turns. */
  ioWakeups: number;
  /** Bytes the I/O threads hold for connections and have not written yet (sends just handed over and not yet read from an inbox are not in it). */
  pendingSendBytes: number;
}

export interface CloseInfo {
  reason: CloseReason;
  /** The socket error number for reason 'error' (0 otherwise). */
  errno: number;
  /** The error's name, e.g. 'ECONNRESET', for reason 'error'. */
  code: string;
  /** For 'frame-too-large': the announced length. */
  detail: number;
  message: string;
}

/**
 * Callbacks of a raw server.  All run on the thread that created the server,
 * in order per connection: open, then frames, then exactly one close.
 */
export interface RawHandlers {
  open?(conn: number, peer: PeerAddress): void;
  /**
   * A whole frame.  `data` is a view into the ring and is valid only until
   * this call returns: copy it (Buffer.from(data)) to keep it.  Frames too
   * big for the ring arrive as Buffers of their own.
   *
   * `check` is the I/O thread's protocol check when the server runs with
   * `protocolCheck: true`: 0 means header and CRC-32 passed, a positive
   * number is the protocol error code (docs/protocol.md) that the message
   * fails with.  Without protocolCheck it is -1.
   */
  frame?(conn: number, data: Buffer, check: number): void;
  close?(conn: number, info: CloseInfo): void;
  /** Pending send bytes fell to sendLowWaterBytes after passing sendHighWaterBytes. */
  drain?(conn: number): void;
  /** After each batch of records (sends made so far are flushed right after). */
  batchEnd?(): void;
  /**
   * Another handler threw: `conn` is the connection whose event it was
   * handling (`null` for batchEnd).  The engine goes on with the next event
   * either way.  Without this handler the error is rethrown on the next tick,
   * as an uncaught exception (what a throwing 'data' listener of a node:net
   * socket does); an error thrown by this handler is rethrown the same way.
   */
  error?(error: unknown, conn: number | null): void;
}

/** send()/write() take bytes: a Buffer or Uint8Array (anything else would be coerced into garbage on the wire). */
function notBytes(method: string, arg: string, v: unknown): TypeError {
  const what = v === null ? 'null' : ArrayBuffer.isView(v) ? v.constructor.name : Array.isArray(v) ? 'an array' : typeof v;
  return new TypeError(`whirlwind: ${method}(conn, ${arg}): ${arg} must be a Buffer or Uint8Array, got ${what}`);
}

const HANDLER_NAMES: ReadonlySet<string> = new Set(['open', 'frame', 'close', 'drain', 'batchEnd', 'error']);

/** Every handler given must be a function and have a known name (a misspelt one would never be called). */
function checkHandlers(handlers: RawHandlers): RawHandlers {
  if (handlers === null || typeof handlers !== 'object') {
    throw new TypeError(`whirlwind: the handlers must be an object of functions (${[...HANDLER_NAMES].join(', ')}), got ${handlers === null ? 'null' : typeof handlers}`);
  }
  for (const [name, fn] of Object.entries(handlers)) {
    if (!HANDLER_NAMES.has(name)) {
      throw new TypeError(`whirlwind: "${name}" is not a handler (the handlers are ${[...HANDLER_NAMES].join(', ')})`);
    }
    if (fn !== undefined && typeof fn !== 'function') throw new TypeError(`whirlwind: handlers.${name} must be a function, got ${fn === null ? 'null' : typeof fn}`);
  }
  return handlers;
}

const CLOSE_REASONS: Record<number, CloseReason> = {
  [LAYOUT.closePeer]: 'peer',
  [LAYOUT.closeError]: 'error',
  [LAYOUT.closeLocal]: 'local',
  [LAYOUT.closeLocalFlushed]: 'local-flushed',
  [LAYOUT.closeFrameTooLarge]: 'frame-too-large',
  [LAYOUT.closeServerClosing]: 'server-closing',
  [LAYOUT.closeOutOfMemory]: 'out-of-memory',
  [LAYOUT.closeIdle]: 'idle',
  [LAYOUT.closeRefused]: 'refused',
};

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(osConstants.errno).map(([k, v]) => [v as number, k]),
);

function closeInfo(code: number, errno: number, detail: number, maxFrame: number): CloseInfo {
  const reason = CLOSE_REASONS[code] ?? 'error';
  const name = errno ? (ERRNO_NAMES.get(errno) ?? `errno ${errno}`) : '';
  let message: string;
  switch (reason) {
    case 'peer': message = 'the peer closed the connection'; break;
    case 'error': message = `socket error ${name}`; break;
    case 'local': message = 'closed by the server'; break;
    case 'local-flushed': message = 'closed by the server after its sends were written'; break;
    case 'frame-too-large': message = `frame length ${detail} exceeds maxFrameBytes (${maxFrame})`; break;
    case 'server-closing': message = 'the server is closing'; break;
    case 'out-of-memory': message = `out of memory buffering ${detail} bytes`; break;
    // (The engine gives the same reason when a flushed close waited flushTimeoutMs for a peer that reads nothing.)
    case 'idle': message = `nothing received or sent for ${detail} ms (idleTimeoutMs, or flushTimeoutMs for a closing connection)`; break;
    case 'refused': message = 'refused by the accept hook'; break;
  }
  return { reason, errno, code: name, detail, message };
}

let layoutChecked = false;

/**
 * How long one wake-up may deliver events before the event loop gets a turn
 * (timers, worker results, other I/O).  Without it a connection flooding the
 * ring (zero-length frames: 16 bytes of ring each) kept JS busy for seconds
 * and every other connection, and every timer, waited.
 */
const DRAIN_BUDGET_MS = 5;

/** The most bytes one send entry gathers from consecutive sends to one connection (SendBatch.send). */
const MAX_GATHERED_BYTES = 1 << 20;

/**
 * Outbound entries for native, in the send-batch format of layout.h.
 * Consecutive sends to one connection within a batch go into one entry
 * (`send`): native handles an entry per connection instead of one per
 * frame (a pipelined echo hands over 16 frames per connection and batch).
 */
class SendBatch {
  buf = Buffer.allocUnsafe(64 * 1024);
  f64 = new Float64Array(this.buf.buffer, this.buf.byteOffset, this.buf.length >> 3);
  u32 = new Uint32Array(this.buf.buffer, this.buf.byteOffset, this.buf.length >> 2);
  len = 0;
  /** Where the last entry starts when it is a send that a next send to the same connection may extend; -1: none. */
  private tail = -1;

  private grow(need: number): void {
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
    this.f64 = new Float64Array(next.buffer, next.byteOffset, next.length >> 3);
    this.u32 = new Uint32Array(next.buffer, next.byteOffset, next.length >> 2);
  }

  /** Append an entry; returns the offset where its n bytes go (8-aligned). */
  entry(token: number, op: number, n: number): number {
    const at = this.len;
    const step = LAYOUT.batchHeaderBytes + ((n + 7) & ~7);
    if (at + step > this.buf.length) this.grow(at + step);
    this.f64[at >> 3] = token;
    this.u32[(at + 8) >> 2] = n;
    this.u32[(at + 12) >> 2] = op;
    this.len = at + step;
    this.tail = -1;
    return at + LAYOUT.batchHeaderBytes;
  }

  /**
   * Room for n bytes to send to a connection; returns their offset (not
   * always aligned).  Extends the last entry when it is a send to the same
   * connection, so the bytes stay in order and nothing between them moves.
   */
  send(token: number, n: number): number {
    const t = this.tail;
    if (t >= 0 && this.f64[t >> 3] === token) {
      const had = this.u32[(t + 8) >> 2]!; // the entry's header holds its token and length
      if (had + n <= MAX_GATHERED_BYTES) {
        const body = t + LAYOUT.batchHeaderBytes;
        const end = body + ((had + n + 7) & ~7);
        if (end > this.buf.length) this.grow(end);
        this.u32[(t + 8) >> 2] = had + n;
        this.len = end;
        return body + had;
      }
    }
    const at = this.entry(token, LAYOUT.opSend, n);
    this.tail = at - LAYOUT.batchHeaderBytes;
    return at;
  }

  /** Empty it, dropping an outsized buffer (the caller keeps the old one for as long as it needs its bytes). */
  reset(): void {
    this.len = 0;
    this.tail = -1;
    if (this.buf.length > 4 * 1024 * 1024) {
      this.buf = Buffer.allocUnsafe(64 * 1024);
      this.f64 = new Float64Array(this.buf.buffer, this.buf.byteOffset, this.buf.length >> 3);
      this.u32 = new Uint32Array(this.buf.buffer, this.buf.byteOffset, this.buf.length >> 2);
    }
  }
}

interface RingView {
  data: number; // byte offset of the data area
  headIdx: number; // u32 index of head
  tailIdx: number;
  stalledIdx: number;
}

/** A listening raw server.  Create with {@link listenRaw}. */
export class RawServer {
  /** The backend in use: 'io_uring', 'epoll' or 'iocp'. */
  readonly backend: BackendName;
  readonly port: number;
  readonly address: string;
  readonly family: 4 | 6;
  readonly options: Readonly<ResolvedEngineOptions>;

  #native: NativeEngineHandle;
  #h: RawHandlers;
  #block: ArrayBuffer;
  #buf: Buffer;
  #u8: Uint8Array;
  #u16: Uint16Array;
  #u32: Uint32Array;
  #i32: Int32Array;
  #f64: Float64Array;
  #rings: RingView[] = [];
  #live: Uint32Array[] = [];
  #stats: Float64Array[] = [];
  #mask: number;
  #open = 0; // connections open as JS saw them
  #peak = 0;
  #batch = new SendBatch();
  #draining = false;
  #flushQueued = false;
  #stopped = 0;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Connections the accept hook has not admitted (yet, or ever): their events are not the user's. */
  #unadmitted = new Set<number>();
  #resolveClose: (() => void) | undefined;
  /** performance.now() past which the current wake-up stops delivering and yields. */
  #budgetEnd = 0;

  constructor(options: EngineOptions, handlers: RawHandlers) {
    const o = resolveEngineOptions(options);
    const addon = loadAddon();
    if (!layoutChecked) {
      checkLayout(addon.layout);
      layoutChecked = true;
    }
    this.backend = chooseBackend(o.backend);
    this.options = Object.freeze({ ...o, backend: this.backend });
    this.#h = checkHandlers(handlers);
    this.#native = new addon.NativeEngine(
      {
        backend: this.backend,
        ioThreads: o.ioThreads,
        ringBytes: o.ringBytes,
        maxFrameBytes: o.maxFrameBytes,
        sendHighWaterBytes: o.sendHighWaterBytes,
        sendLowWaterBytes: o.sendLowWaterBytes,
        recvBufferBytes: o.recvBufferBytes,
        recvBufferCount: o.recvBufferCount,
        backlog: o.backlog,
        protocolCheck: o.protocolCheck,
        maxConnections: o.maxConnections,
        maxConnectionsPerAddress: o.maxConnectionsPerAddress,
        refuseFrame: o.refuseFrame ?? undefined,
        idleTimeoutMs: o.idleTimeoutMs,
        idleFrame: o.idleFrame ?? undefined,
        flushTimeoutMs: o.flushTimeoutMs,
        tooLargeFrame: o.tooLargeFrame ?? undefined,
        keepAliveMs: o.keepAliveMs,
        holdNew: o.acceptHook !== null,
      },
      this.#onWake,
    );
    this.#block = this.#native.block();
    this.#buf = Buffer.from(this.#block);
    this.#u8 = new Uint8Array(this.#block);
    this.#u16 = new Uint16Array(this.#block);
    this.#u32 = new Uint32Array(this.#block);
    this.#i32 = new Int32Array(this.#block);
    this.#f64 = new Float64Array(this.#block, 0, this.#block.byteLength >> 3);
    this.#mask = o.ringBytes - 1;
    for (let i = 0; i < o.ioThreads; i++) {
      const hdr = LAYOUT.controlBytes + i * (LAYOUT.ringHeaderBytes + o.ringBytes);
      this.#rings.push({
        data: hdr + LAYOUT.ringHeaderBytes,
        headIdx: (hdr + LAYOUT.ringHead) >> 2,
        tailIdx: (hdr + LAYOUT.ringTail) >> 2,
        stalledIdx: (hdr + LAYOUT.ringStalled) >> 2,
      });
      this.#live.push(new Uint32Array(this.#block, this.#native.liveTableOffset(i), LAYOUT.maxSlotsPerThread));
      this.#stats.push(new Float64Array(this.#block, this.#native.statsOffset(i), LAYOUT.statCount));
    }
    try {
      const r = this.#native.listen(o.host, o.port, o.ipv6Only);
      this.port = r.port;
      this.address = r.address;
      this.family = r.family === 6 ? 6 : 4;
    } catch (err) {
      this.#native.stop();
      this.#closed = true;
      throw err;
    }
  }

  /** True while the connection is open and takes sends. */
  isOpen(conn: number): boolean {
    // Safe integers only: the token parts are decoded with 32-bit ops that
    // would alias a number above 2^53 onto a live connection.
    if (!Number.isSafeInteger(conn) || conn < 0) return false;
    const live = this.#live[tokenThread(conn)];
    const gen = tokenGen(conn);
    return live !== undefined && gen !== 0 && live[tokenSlot(conn)] === gen;
  }

  /**
   * Queue one frame (the 4-byte length prefix is added).  Returns false, and
   * does nothing, when the connection is not open.  Frames to one connection
   * leave in the order they were sent.
   */
  send(conn: number, payload: Uint8Array): boolean {
    if (!(payload instanceof Uint8Array)) throw notBytes('send', 'payload', payload);
    if (this.#closed || !this.isOpen(conn)) return false;
    const n = payload.length;
    const b = this.#batch;
    const at = b.send(conn, n + 4);
    const buf = b.buf;
    buf[at] = n;
    buf[at + 1] = n >>> 8;
    buf[at + 2] = n >>> 16;
    buf[at + 3] = n >>> 24;
    buf.set(payload, at + 4);
    this.#queueFlush();
    return true;
  }

  /** Queue bytes that are already framed (one or more whole frames). */
  write(conn: number, framed: Uint8Array): boolean {
    if (!(framed instanceof Uint8Array)) throw notBytes('write', 'framed', framed);
    if (this.#closed || !this.isOpen(conn)) return false;
    const at = this.#batch.send(conn, framed.length);
    this.#batch.buf.set(framed, at);
    this.#queueFlush();
    return true;
  }

  /**
   * Close one connection.  With flush (the default) it closes once every
   * frame queued before this call is written; without, at once.  Returns
   * false when the connection was not open.  Its close event follows.
   */
  closeConnection(conn: number, options: { flush?: boolean } = {}): boolean {
    if (this.#closed || !this.isOpen(conn)) return false;
    this.#batch.entry(conn, options.flush === false ? LAYOUT.opClose : LAYOUT.opCloseFlushed, 0);
    // Hand the close (and every send before it) over now, then retire the
    // token so later sends are refused at once.  The exchange only clears
    // the slot if it still holds this connection's generation: the I/O
    // thread may have closed and reused it meanwhile.
    this.flush();
    Atomics.compareExchange(this.#live[tokenThread(conn)]!, tokenSlot(conn), tokenGen(conn), 0);
    return true;
  }

  /**
   * Stop reading from the connection: its frames stop arriving and TCP
   * pushes back on that peer alone.  Frames already received still arrive.
   * Returns false when the connection is not open.
   */
  pauseReading(conn: number): boolean {
    if (this.#closed || !this.isOpen(conn)) return false;
    this.#batch.entry(conn, LAYOUT.opPauseRecv, 0);
    this.#queueFlush();
    return true;
  }

  /** Read from the connection again after {@link pauseReading}. */
  resumeReading(conn: number): boolean {
    if (this.#closed || !this.isOpen(conn)) return false;
    this.#batch.entry(conn, LAYOUT.opResumeRecv, 0);
    this.#queueFlush();
    return true;
  }

  /** Bytes queued for the connection and not yet written; -1 if not open. */
  pendingBytes(conn: number): number {
    if (this.#closed) return -1;
    this.flush();
    return this.#native.pendingBytes(conn);
  }

  /** The engine's counters (read from shared memory; no native call). */
  stats(): EngineStats {
    const sum = (i: number) => this.#stats.reduce((a, s) => a + s[i]!, 0);
    const closed = {} as Record<CloseReason, number>;
    for (const [code, reason] of Object.entries(CLOSE_REASONS)) {
      closed[reason] = sum(LAYOUT.statClosedBase + Number(code) - 1);
    }
    return {
      backend: this.backend,
      ioThreads: this.#rings.length,
      connections: { open: sum(LAYOUT.statOpen), peak: this.#peak, accepted: sum(LAYOUT.statAccepted), refused: sum(LAYOUT.statRefused), closed },
      framesIn: sum(LAYOUT.statFramesIn),
      bytesIn: sum(LAYOUT.statBytesIn),
      sendsOut: sum(LAYOUT.statSendsOut),
      bytesOut: sum(LAYOUT.statBytesOut),
      ring: {
        stalls: sum(LAYOUT.statRingStalls),
        deferred: sum(LAYOUT.statDeferred),
        usedBytes: this.#closed ? 0 : this.#rings.reduce((a, r) => a + ((Atomics.load(this.#u32, r.tailIdx) - this.#u32[r.headIdx]!) >>> 0), 0),
        capacityBytes: this.#rings.length * (this.#mask + 1),
      },
      acceptErrors: sum(LAYOUT.statAcceptErrors),
      staleOps: sum(LAYOUT.statStaleOps),
      ioWakeups: sum(LAYOUT.statWakeups),
      pendingSendBytes: sum(LAYOUT.statPendingBytes),
    };
  }

  /** Hand queued sends to the I/O threads now. */
  flush(): void {
    const b = this.#batch;
    if (b.len === 0 || this.#closed) return;
    const { buf, len } = b;
    b.reset(); // before submit: a batch it refuses is not sent again with the next
    this.#native.submit(buf, len);
  }

  /**
   * Stop accepting, close every connection (each gets its close event with
   * reason 'server-closing'), wait for the I/O threads to finish, and free
   * everything.
   */
  close(): Promise<void> {
    if (!this.#closing) {
      if (this.#closed) return Promise.resolve();
      this.#closing = new Promise((resolve) => {
        this.#resolveClose = resolve;
      });
      this.flush();
      this.#native.shutdown();
    }
    return this.#closing;
  }

  /** Stop at once: no more events; threads are joined before this returns. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#native.stop();
    this.#resolveClose?.();
  }

  /** Run the accept hook for a held connection, then admit or refuse it. */
  #admission(conn: number, peer: PeerAddress): void {
    this.#unadmitted.add(conn);
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const decide = (admit: boolean): void => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      if (this.#closed || !this.isOpen(conn)) return; // gone meanwhile; its close is swallowed
      if (admit) {
        this.#unadmitted.delete(conn);
        this.#batch.entry(conn, LAYOUT.opAdmit, 0);
        this.#queueFlush();
        try {
          this.#h.open?.(conn, peer);
        } catch (e) {
          this.#handlerThrew(e, conn);
        }
      } else {
        this.#batch.entry(conn, LAYOUT.opRefuse, 0);
        this.#queueFlush();
      }
    };
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = this.options.acceptHook!(peer);
    } catch {
      return decide(false);
    }
    if (typeof verdict === 'boolean') return decide(verdict);
    timer = setTimeout(() => decide(false), this.options.acceptHookTimeoutMs);
    Promise.resolve(verdict).then((v) => decide(v === true), () => decide(false));
  }

  #queueFlush(): void {
    if (this.#draining || this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.flush();
    });
  }

  #onWake = (): void => {
    if (this.#closed) return;
    // wake_pending stays 1 while we drain, so I/O threads that publish
    // meanwhile do not queue further calls: we look again before leaving.
    // Leaving is either "store 0, then load every tail" (seq_cst; an I/O
    // thread that publishes after our store sees 0 and wakes us, see
    // Engine::notify_js) or, out of budget, leaving it 1 with a setImmediate
    // that comes back: either way no batch is ever stranded.
    const wakeIdx = LAYOUT.ctlWakePending >> 2;
    const u32 = this.#u32;
    this.#draining = true;
    this.#budgetEnd = performance.now() + DRAIN_BUDGET_MS;
    let left = false;
    try {
      for (let round = 0; ; round++) {
        let any = false;
        for (let i = 0; i < this.#rings.length; i++) {
          if (this.#drainRing(i)) any = true;
        }
        if (any) {
          try {
            this.#h.batchEnd?.();
          } catch (e) {
            this.#handlerThrew(e, null);
          }
          this.flush();
        }
        if (this.#closed) break;
        const out = round >= 16 || performance.now() > this.#budgetEnd;
        if (!any || out) {
          if (!this.#anyPending()) {
            Atomics.store(u32, wakeIdx, 0);
            if (!this.#anyPending()) break;
            Atomics.store(u32, wakeIdx, 1);
          }
          if (out) {
            // Let timers and other I/O run; come back right after.
            // wake_pending stays 1 meanwhile: were it 0, an I/O thread
            // publishing now would queue a threadsafe-function call, and Node
            // runs queued calls back to back (up to 1000) before the event
            // loop gets a turn, so one flooding connection kept JS here for
            // seconds.
            setImmediate(this.#onWake);
            break;
          }
        }
      }
      left = true;
    } finally {
      if (!left && !this.#closed) {
        // Thrown out of the loop (handlers' errors are caught per event, so
        // this is the engine's own): look again next turn, as when out of
        // budget; with wake_pending still 1 nothing else would call us.
        setImmediate(this.#onWake);
      }
      this.#draining = false;
      this.flush();
      if (this.#stopped === this.#rings.length && !this.#closed) {
        this.#closed = true;
        this.#native.stop();
        this.#resolveClose?.();
      }
    }
  };

  /** A user's handler threw: hand it to the error handler, else rethrow it outside the engine's drain. */
  #handlerThrew(error: unknown, conn: number | null): void {
    const h = this.#h;
    if (h.error) {
      try {
        h.error(error, conn); // called on the handlers object, like the others
        return;
      } catch (e) {
        error = e;
      }
    }
    process.nextTick(() => {
      throw error;
    });
  }

  #anyPending(): boolean {
    const u32 = this.#u32;
    for (const r of this.#rings) {
      if (Atomics.load(u32, r.tailIdx) !== u32[r.headIdx]) return true;
    }
    return false;
  }

  #drainRing(i: number): boolean {
    const r = this.#rings[i]!;
    const u32 = this.#u32;
    let head = u32[r.headIdx]!;
    const tail = Atomics.load(u32, r.tailIdx);
    if (head === tail) return false;
    const mask = this.#mask;
    let count = 0;
    try {
      while (head !== tail) {
        const off = r.data + (head & mask);
        const kind = this.#u16[off >> 1]!;
        const len = u32[(off + 4) >> 2]!;
        head = (head + ((LAYOUT.recordHeaderBytes + len + 15) & ~15)) >>> 0;
        if (kind !== LAYOUT.recPad) {
          const token = this.#f64[(off + 8) >> 3]!;
          try {
            this.#record(kind, this.#u16[(off + 2) >> 1]!, token, off + 16, len);
          } catch (e) {
            // The rest of the batch is other events, often of other
            // connections: they are delivered all the same.
            this.#handlerThrew(e, kind === LAYOUT.recStopped ? null : token);
          }
        }
        if ((++count & 255) === 0) {
          // Give the producer room while a long batch is handled.
          Atomics.store(u32, r.headIdx, head);
          if (Atomics.load(u32, r.stalledIdx) !== 0) this.#native.resume(i);
          // Out of time: the rest waits for the next turn (#onWake).
          if (performance.now() > this.#budgetEnd) break;
        }
      }
    } finally {
      Atomics.store(u32, r.headIdx, head);
      if (Atomics.load(u32, r.stalledIdx) !== 0 && !this.#closed) this.#native.resume(i);
    }
    return true;
  }

  #record(kind: number, flags: number, token: number, p: number, len: number): void {
    const h = this.#h;
    switch (kind) {
      case LAYOUT.recFrame:
        // A view straight over the ring (view.ts: neither Buffer.from's
        // checks nor subarray's species lookup, once per frame).
        h.frame?.(token, viewOf(this.#block, p, len), flags === 0 ? -1 : flags & 0x7fff);
        return;
      case LAYOUT.recOpen: {
        const port = this.#u16[p >> 1]!;
        const family = this.#u8[p + 2] === 6 ? 6 : 4;
        const n = this.#u8[p + 3]!;
        const peer: PeerAddress = { address: this.#buf.toString('latin1', p + 4, p + 4 + n), port, family };
        if (++this.#open > this.#peak) this.#peak = this.#open;
        if (flags & LAYOUT.recFlagHeld) this.#admission(token, peer);
        else h.open?.(token, peer);
        return;
      }
      case LAYOUT.recFrameLarge: {
        const data = this.#native.takeLarge(this.#f64[p >> 3]!);
        if (data) h.frame?.(token, data, flags === 0 ? -1 : flags & 0x7fff);
        return;
      }
      case LAYOUT.recClose:
        this.#open--;
        // A connection the user never saw open is not closed for the user either.
        if (this.#unadmitted.delete(token)) return;
        h.close?.(token, closeInfo(this.#u32[p >> 2]!, this.#i32[(p + 4) >> 2]!, this.#u32[(p + 8) >> 2]!, this.options.maxFrameBytes));
        return;
      case LAYOUT.recDrain:
        h.drain?.(token);
        return;
      case LAYOUT.recStopped:
        this.#stopped++;
        return;
      default:
        throw new Error(`whirlwind: unknown ring record kind ${kind} (addon and TypeScript out of sync?)`);
    }
  }
}

/** Listen and start delivering events to `handlers`. Throws on bad options or a failed listen. */
export function listenRaw(options: EngineOptions, handlers: RawHandlers): RawServer {
  return new RawServer(options, handlers);
}
