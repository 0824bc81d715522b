// server.ts - the socket-actor server: the engine's frames in, actor turns
// out to a piscina pool in batches, replies and pushes back in order.
//
// Per connection there is one FIFO mailbox of items: requests (REQ), bytes
// ready to send (OUT: pushes, and answers made without a handler: protocol
// errors, OVERLOADED, SHUTTING_DOWN) and lifecycle hooks (HOOK).  The rules
// (docs/design.md, "Socket actors"):
//
//   - at most one turn per connection is in flight;
//   - the head of the mailbox moves only between turns: OUT items at the
//     head are written at once, a REQ or HOOK at the head makes the
//     connection ready for a worker;
//   - a connection's turn takes every REQ at the head, up to
//     maxTurnsPerConnection, and they run in order in one task;
//   - everything a turn produced for its own connection is written when its
//     result arrives, before anything queued behind it.
//
// Dispatch: ready connections queue here; at most maxWorkers tasks are in
// flight, and each task takes an even share of the ready connections (up to
// maxTurnsPerTask), so under load one piscina task carries many turns.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { Piscina } from 'piscina';
import { type CloseInfo, type EngineStats, RawServer } from '../engine.js';
import { OptionError } from '../errors.js';
import { ENGINE_DEFAULTS, type EngineOptions, type PeerAddress } from '../options.js';
import { MessageEncoder, Messages, type OutgoingMessage, type SendOptions } from '../protocol/encoder.js';
import { ErrorCode, ProtocolError } from '../protocol/errors.js';
import { Flag, Kind } from '../protocol/layout.js';
import { ServerCodec } from '../protocol/server.js';
import { viewOf } from '../view.js';
import { type ActorShape, type ClosedInfo, type MainThreadApi, PUSH_POLICIES, type PushOptions, type TurnFailure, actorClassOf, checkGroup, shapeOf, shown } from './actor.js';
import { type ActorServerOptions, type ResolvedActorOptions, resolveActorOptions } from './options.js';
import { TURN_TIME_BUCKETS, TURN_TIME_BUCKETS_MS, type TimeHistogram, sharedClockMs } from './timing.js';
import { ActionTiming, type Cmd, CmdOp, LATE_PORT_KEY, type LateResult, MAIN_PORT_KEY, POLICY_CODES, RESULT_TURN_HEADER, TASK_REQUEST_HEADER, TASK_TURN_HEADER, type Task, type TaskResult, THREAD_KEY, TurnKind, workerInit } from './wire.js';

const REQ = 0;
const OUT = 1;
const HOOK = 2;
type Item =
  | { k: typeof REQ; frame: Buffer; /** When it was drained from the ring (shared clock, ms). */ at: number }
  | { k: typeof OUT; bytes: Uint8Array; close: string | null; policy: number; key: string | null }
  | { k: typeof HOOK; kind: number; info: ClosedInfo | TurnFailure | null };

/** A push held for a slow consumer. */
interface Held {
  bytes: Uint8Array;
  key: string | null;
}

/** Push policy codes (wire.ts POLICY_CODES); -1 is "none given"; ANSWER marks answers, never held or dropped. */
const ANSWER = -2;
const P_QUEUE = 0;
const P_DROP_NEW = 2;
const P_CLOSE = 3;
const P_COALESCE = 4;

class Conn {
  state: Uint8Array | null = null;
  box: Item[] = [];
  head = 0;
  /** REQ items in the mailbox, waiting or running. */
  requests = 0;
  /** The items of the turn in flight, or null; when it was handed to a worker. */
  running: Item[] | null = null;
  runningSince = 0;
  /** The running turn's number (TurnSpec.turn). */
  turnId = 0;
  /** The running turn outlived its task (it awaits): the threadId of the worker it runs on; else 0. */
  lateOn = 0;
  /** How long the running turn may take from runningSince: its task's watchdog allowance (0: no watchdog). */
  allowanceMs = 0;
  ready = false;
  paused = false;
  /** The engine reported the close. */
  closed = false;
  /** We decided to close it (GOAWAY sent or queued): frames from it are ignored. */
  closing = false;
  /** A fatal protocol error was seen: no more frames are taken; its GOAWAY waits in the mailbox behind the answers before it. */
  refusing = false;
  closeReason: string | null = null;
  groups: Set<string> | null = null;
  /** Heartbeat clock tick of the last frame received; the tick a PING went out (0: none outstanding). */
  seen = 0;
  pingAt = 0;
  /** Slow consumer: its unsent bytes passed sendHighWaterBytes and no drain came yet.  Pushes wait in `held`. */
  congested = false;
  /** Bytes written since its unsent bytes were last looked at. */
  unchecked = 0;
  /** Reading stopped while congested: its answers pile up unread, so no more requests are taken until the drain. */
  sendPaused = false;
  held: Held[] = [];
  heldBytes = 0;
  constructor(
    readonly id: number,
    readonly peer: PeerAddress,
  ) {}
}

/** Tasks that keep a worker busy this long (ms, smoothed) get one more task queued behind them per worker (#dispatch). */
const QUEUE_BEHIND_MS = 1;
/** How long an ended worker is remembered (ms): far longer than a message of its can be on its way (#goneThreads). */
const GONE_KEPT_MS = 60_000;
/** A task takes no more turns than its worker runs in about this long (ms), judged by the turns before (#dispatch). */
const TASK_TARGET_MS = 2;

/**
 * A task's watchdog, and the abort signal piscina watches (its
 * AbortSignalEventTarget: addEventListener, removeEventListener, aborted,
 * reason).  An AbortController per task cost an EventTarget and its
 * listener bookkeeping: a tenth of the main thread's samples at 100 x 1 with
 * 100 us of work per request.
 */
class Watchdog {
  aborted = false;
  reason: Error | undefined = undefined;
  #listeners: Array<() => void> = [];
  #timer: NodeJS.Timeout;
  constructor(readonly ms: number) {
    this.#timer = setTimeout(() => this.#abort(), ms);
  }
  addEventListener(_name: 'abort', listener: () => void): void {
    this.#listeners.push(listener);
  }
  removeEventListener(_name: 'abort', listener: () => void): void {
    const i = this.#listeners.indexOf(listener);
    if (i >= 0) this.#listeners.splice(i, 1);
  }
  /** The task settled: the timer goes. */
  stop(): void {
    clearTimeout(this.#timer);
  }
  #abort(): void {
    this.aborted = true;
    this.reason = new Error('the task ran past its watchdog');
    for (const l of this.#listeners.splice(0)) l();
  }
}

/** Counters of the actor layer (the engine's are under `engine`). */
export interface ActorServerStats {
  engine: EngineStats;
  connections: number;
  groups: number;
  /** Requests waiting for a worker, over all connections. */
  queuedRequests: number;
  /** Connections whose reading is paused by the mailbox limit. */
  pausedConnections: number;
  tasksInFlight: number;
  /** Requests accepted into mailboxes (not counting those answered without a turn). */
  requests: number;
  /** Worker tasks run, and turns in them (a turn: one connection's run of requests, or a hook). */
  tasks: number;
  turns: number;
  failedTurns: number;
  /** Worker threads alive now. */
  workers: number;
  /** Connections that are slow consumers now, and the push bytes held for them. */
  slowConsumers: number;
  heldPushBytes: number;
  /** Pushes not delivered because their receiver was a slow consumer, by what happened. */
  pushDrops: { dropOldest: number; dropNew: number; coalesced: number; closed: number };
  /** Items (requests, pushes, hooks) in all mailboxes, running ones included; the most in one. */
  mailboxItems: number;
  deepestMailbox: number;
  /** Turns in flight for at least `slowTurnMs` (default 3000), slowest first. */
  slowTurns: Array<{ conn: number; action: string; requests: number; ms: number }>;
  /**
   * Per action, as the workers measured it (at most 1000 actions are tracked):
   * requests run, their mean and longest handler run time, and histograms of
   * their run time and of their wait (from arrival on the main thread to the
   * handler's start), in ms.
   */
  actions: Record<string, { requests: number; meanMs: number; maxMs: number; runMs: TimeHistogram; waitMs: TimeHistogram }>;
  /** Turns answered, per live worker threadId; those of workers that have ended under 0. */
  workerTurns: Record<number, number>;
}

/** Options of {@link ActorServer.close}. */
export interface CloseOptions {
  /** How long turns in flight and queued requests may take before they are answered SHUTTING_DOWN and connections are closed anyway. */
  deadlineMs?: number;
}

/**
 * The worker entry, compiled from workers/actor-worker.ts: beside this file
 * in dist/ (dist/src/actor -> dist/workers), or, when this file runs from
 * source (tests), in dist/ of the package.
 */
function workerPath(): string {
  for (const rel of ['../../workers/actor-worker.js', '../../dist/workers/actor-worker.js']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('whirlwind: dist/workers/actor-worker.js is missing; run "npm run build:ts" (tsc) first');
}

/**
 * A socket-actor server.  Create with {@link listen} (or {@link createServer}
 * then `listen()`).
 *
 * Events: `connection` (conn, peer), `close` (conn, info: CloseInfo),
 * `turnFailed` (failure: TurnFailure), `workerError` (error: Error; a worker
 * died with no turn to blame).
 */
export class ActorServer extends EventEmitter {
  readonly options: Readonly<ResolvedActorOptions>;
  readonly actorModule: URL;
  #engineOptions: ActorServerOptions;
  #raw: RawServer | null = null;
  #pool: Piscina | null = null;
  #shape: ActorShape | null = null;
  #codec: ServerCodec;
  #encoder = new MessageEncoder();
  #conns = new Map<number, Conn>();
  #open = 0;
  #groups = new Map<string, Set<number>>();
  #ready: Conn[] = [];
  #readyHead = 0;
  #waiting = 0;
  #paused = 0;
  #tasksInFlight = 0;
  #maxTasksInFlight: number;
  /** How long tasks keep a worker busy, in ms, smoothed (TaskResult.busyMs); see #dispatch. */
  #taskBusyMs = 0;
  /** The same per turn in the task, smoothed; see #dispatch. */
  #turnBusyMs = 0;
  #counters = { requests: 0, tasks: 0, turns: 0, failedTurns: 0 };
  #closing: Promise<void> | null = null;
  #shuttingDown = false;
  /** The engine and pool are being stopped: no more tasks, no more events about turns. */
  #stopped = false;
  #onSettled: (() => void) | null = null;
  #onAllClosed: (() => void) | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #tick = 1;
  #api: MainThreadApi;
  #checkEvery = 65536;
  #defaultPolicy = 0;
  #heldBytes = 0;
  #drops = { dropOldest: 0, dropNew: 0, coalesced: 0, closed: 0 };
  #slow = new Set<Conn>();
  #workerTurns = new Map<number, number>();
  /** The watchdog of turns that outlived their task (#watchLate). */
  #lateTimer: NodeJS.Timeout | null = null;
  /** Workers #watchLate stopped, until they have exited (#onWorkerGone). */
  #stoppedLate = new Set<number>();
  /**
   * Workers that have ended, to when (threadId to performance.now(); threadIds
   * are never reused): a message of theirs still on its way is known for
   * theirs.  Forgotten after GONE_KEPT_MS (#retireIdle), so a pool whose
   * workers crash or retire again and again does not grow this for ever.
   */
  #goneThreads = new Map<number, number>();
  /** When each live worker last ended a task or an awaiting turn, or started (threadId to performance.now()); #retireIdle. */
  #lastBusy = new Map<number, number>();
  /**
   * Turns awaiting on each worker (threadId to count), whether or not their
   * connection is still open: the worker runs them on (#retireIdle).  Counted
   * up by a task's result, down by a late result, which may come first.
   */
  #lateTurns = new Map<number, number>();
  /** The sweep that retires idle workers (#retireIdle). */
  #retireTimer: NodeJS.Timeout | null = null;
  /** The worker #retireIdle is stopping, until it has exited (0: none); no task is posted meanwhile. */
  #retiring = 0;
  /** Numbers the turns (Conn.turnId). */
  #turnSeq = 0;
  /** The last peer address put in a task, and its bytes (#addressBytes). */
  #lastAddress = '';
  #lastAddressBytes = Buffer.alloc(0);
  /** Per action: the sum of the workers' ActionTiming records (wire.ts), RUN_MAX their max. */
  #actions = new Map<string, Float64Array>();
  /** Arrival time of the frames of the ring batch being drained (0: none read yet; batchEnd resets it). */
  #arrival = 0;

  constructor(options: ActorServerOptions) {
    super();
    const { actor, actorOptions, engineOptions } = resolveActorOptions(options);
    this.options = Object.freeze(actorOptions);
    this.actorModule = actor;
    this.#engineOptions = engineOptions as ActorServerOptions;
    const o = this.options;
    this.#codec = new ServerCodec({
      maxBodyBytes: o.maxBodyBytes,
      maxAttachmentBytes: o.maxAttachmentBytes,
      maxDecompressedBytes: o.maxDecompressedBytes,
      maxDepth: o.maxDepth,
      requireChecksum: o.requireChecksum,
    });
    this.#maxTasksInFlight = o.maxWorkers;
    this.#defaultPolicy = POLICY_CODES[o.defaultPushPolicy];
    this.#api = Object.freeze({
      onlineCount: async () => this.onlineCount,
      isConnected: async (conn: number) => this.isConnected(conn),
      peer: async (conn: number) => this.peer(conn),
      connections: async () => this.connections(),
      groupMembers: async (group: string) => this.groupMembers(group),
      close: async (conn: number, reason?: string) => this.closeConnection(conn, reason),
    });
  }

  /** The engine underneath (null before listen()). */
  get raw(): RawServer {
    if (!this.#raw) throw new Error('the server is not listening yet');
    return this.#raw;
  }
  get port(): number {
    return this.raw.port;
  }
  get address(): string {
    return this.raw.address;
  }
  get backend(): string {
    return this.raw.backend;
  }

  /** Loads the actor module (to check it and learn its hooks), starts the pool, listens. */
  async listen(): Promise<this> {
    if (this.#raw) return this;
    let mod: Record<string, unknown>;
    try {
      mod = (await import(this.actorModule.href)) as Record<string, unknown>;
    } catch (e) {
      // Name the module and the option: a SyntaxError from import() names neither.
      const err = e as Error;
      throw new OptionError('actor', `could not load ${this.actorModule.href}: ${err?.name ?? 'Error'}: ${err?.message ?? String(e)}`, { cause: e });
    }
    this.#shape = shapeOf(actorClassOf(mod, this.actorModule.href));
    const o = this.options;
    const init = workerInit(this.actorModule.href, o);
    const pool = new Piscina({
      filename: workerPath(),
      minThreads: o.minWorkers,
      maxThreads: o.maxWorkers,
      // Idle workers are retired by #retireIdle, not by piscina: a worker
      // whose only work is turns that await holds no task, and piscina
      // would stop it under them.
      idleTimeout: Infinity,
      concurrentTasksPerWorker: 1,
      // 'async': a worker's event loop keeps running between tasks, so late
      // timers and comlink answers are handled while it waits.
      atomics: 'async',
      // whirlwind keeps its own turn times (stats().actions); piscina's
      // per-task run and wait histograms would be two more records per task.
      recordTiming: false,
      workerData: init,
      ...(o.resourceLimits ? { resourceLimits: o.resourceLimits } : {}),
    });
    pool.on('message', (m: unknown) => {
      const hello = m as Record<string, unknown> | null;
      const port = hello?.[MAIN_PORT_KEY] as MessagePort | undefined;
      if (port) {
        Comlink.expose(this.#api, port as unknown as Comlink.Endpoint);
        port.unref();
      }
      const late = hello?.[LATE_PORT_KEY] as MessagePort | undefined;
      if (late) {
        const thread = hello![THREAD_KEY] as number;
        this.#lastBusy.set(thread, performance.now());
        late.on('message', (r: LateResult) => this.#onLate(r));
        late.unref();
        // When the worker ends (a crash, terminate(), retired as idle) its
        // awaiting turns will not finish.  Its 'exit', heard after piscina's
        // own listener has taken the worker out of the pool: else the
        // onTurnFailed turns and the next tasks could be sent to it, and
        // fail with it.  (The late port's 'close' can come before that.)
        const worker = pool.threads.find((w) => w.threadId === thread);
        if (worker) worker.once('exit', () => this.#onWorkerGone(thread));
        else late.once('close', () => this.#onWorkerGone(thread));
      }
    });
    // Without unfinished tasks piscina reports a dead worker as 'error'; never let that throw.
    pool.on('error', (e: Error) => this.#notify('workerError', e));
    this.#pool = pool;
    this.#retireTimer = setInterval(() => this.#retireIdle(), Math.min(1000, Math.max(10, Math.floor(o.workerIdleTimeoutMs / 4))));
    this.#retireTimer.unref();
    try {
      // Connections the engine closes on its own are told why first (a GOAWAY),
      // unless the user chose other bytes.
      const e = this.#engineOptions as EngineOptions;
      const engine: EngineOptions = { ...e, protocolCheck: true };
      if ((e.idleTimeoutMs ?? 0) > 0 && e.idleFrame === undefined) {
        engine.idleFrame = this.#encoder.encodePrefixed(Messages.goAway(ErrorCode.TIMEOUT, `idle for ${e.idleTimeoutMs} ms`));
      }
      if (e.tooLargeFrame === undefined) {
        const max = e.maxFrameBytes ?? ENGINE_DEFAULTS.maxFrameBytes;
        engine.tooLargeFrame = this.#encoder.encodePrefixed(Messages.goAway(ErrorCode.FRAME_TOO_LARGE, `a frame announced more than maxFrameBytes (${max}) bytes`));
      }
      if (((e.maxConnections ?? 0) > 0 || (e.maxConnectionsPerAddress ?? 0) > 0 || e.acceptHook) && e.refuseFrame === undefined) {
        engine.refuseFrame = this.#encoder.encodePrefixed(Messages.goAway(ErrorCode.OVERLOADED, 'connection refused'));
      }
      this.#raw = new RawServer(engine, {
        open: (conn, peer) => this.#onOpen(conn, peer),
        frame: (conn, data, check) => this.#onFrame(conn, data, check),
        close: (conn, info) => this.#onClose(conn, info),
        drain: (conn) => this.#onDrain(conn),
        batchEnd: () => {
          this.#arrival = 0;
          this.#dispatch();
        },
      });
    } catch (e) {
      clearInterval(this.#retireTimer ?? undefined);
      await pool.destroy();
      throw e;
    }
    // Look at unsent bytes about four times per high-water mark written.
    this.#checkEvery = Math.max(4096, Math.floor(this.#raw.options.sendHighWaterBytes / 4));
    if (o.heartbeatIntervalMs > 0) {
      this.#heartbeat = setInterval(() => this.#beat(), o.heartbeatIntervalMs);
      this.#heartbeat.unref();
    }
    return this;
  }

  // ---------------------------------------------------------------------------
  // Main-thread API
  // ---------------------------------------------------------------------------

  /** Connections open now. */
  get onlineCount(): number {
    return this.#open;
  }

  isConnected(conn: number): boolean {
    const c = this.#conns.get(conn);
    return c !== undefined && !c.closed && !c.closing;
  }

  peer(conn: number): PeerAddress | null {
    const c = this.#conns.get(conn);
    return c && !c.closed ? { ...c.peer } : null;
  }

  connections(): number[] {
    const out: number[] = [];
    for (const c of this.#conns.values()) if (!c.closed && !c.closing) out.push(c.id);
    return out;
  }

  groupMembers(group: string): number[] {
    return [...(this.#groups.get(group) ?? [])];
  }

  /**
   * Push to one connection or a list; each gets it after its turn in flight
   * (if any), and under its push policy if it is a slow consumer.  Returns
   * how many it was queued to.
   */
  push(conns: number | readonly number[], topic: string, body?: unknown, options: PushOptions = {}): number {
    const { frame, policy, key } = this.#pushFrame(topic, body, options);
    let n = 0;
    for (const id of typeof conns === 'number' ? [conns] : conns) if (this.#deliver(id, frame, policy, key)) n++;
    return n;
  }

  pushToGroup(group: string, topic: string, body?: unknown, options: PushOptions & { except?: number } = {}): number {
    checkGroup('pushToGroup', group);
    const { frame, policy, key } = this.#pushFrame(topic, body, options);
    let n = 0;
    for (const id of this.#groups.get(group) ?? []) if (id !== options.except && this.#deliver(id, frame, policy, key)) n++;
    return n;
  }

  broadcast(topic: string, body?: unknown, options: PushOptions & { except?: number } = {}): number {
    const { frame, policy, key } = this.#pushFrame(topic, body, options);
    let n = 0;
    for (const c of this.#conns.values()) if (c.id !== options.except && this.#deliver(c.id, frame, policy, key)) n++;
    return n;
  }

  #pushFrame(topic: string, body: unknown, options: PushOptions & { except?: number }): { frame: Buffer; policy: number; key: string | null } {
    const { exceptSelf: _s, except: _e, policy, coalesceKey, ...send } = options;
    let code = -1;
    if (policy !== undefined) {
      code = (POLICY_CODES as Record<string, number>)[policy] ?? -1;
      if (code < 0) throw new TypeError(`options.policy must be one of ${PUSH_POLICIES.join(', ')} (got ${String(policy)})`);
      if (policy === 'coalesce' && typeof coalesceKey !== 'string') throw new TypeError("options.coalesceKey must be a string for policy 'coalesce'");
    }
    return { frame: this.#encoder.encodePrefixed(Messages.push(topic, body, send)), policy: code, key: policy === 'coalesce' ? coalesceKey! : null };
  }

  join(conn: number, group: string): boolean {
    checkGroup('join', group);
    const c = this.#conns.get(conn);
    if (!c || c.closed) return false;
    this.#join(c, group);
    return true;
  }

  leave(conn: number, group: string): boolean {
    checkGroup('leave', group);
    const c = this.#conns.get(conn);
    if (!c) return false;
    this.#leave(c, group);
    return true;
  }

  /**
   * Close a connection now: GOAWAY (code 0, `reason` as its message) after
   * what was already written to it, then close.  Requests it has waiting or
   * running are not answered (its client fails them as CONNECTION_CLOSED).
   */
  closeConnection(conn: number, reason = 'closed by the server'): boolean {
    if (typeof reason !== 'string') throw new TypeError(`closeConnection(conn, reason): reason must be a string, got ${shown(reason)}`);
    const c = this.#conns.get(conn);
    if (!c || c.closed || c.closing) return false;
    this.#goAway(c, ErrorCode.NONE, reason);
    return true;
  }

  /**
   * Counters; `slowTurnMs` picks which turns in flight are listed in
   * `slowTurns` (slowest first).
   */
  stats(options: { slowTurnMs?: number } = {}): ActorServerStats {
    const slowMs = options.slowTurnMs ?? 3000;
    const now = performance.now();
    const slowTurns: ActorServerStats['slowTurns'] = [];
    let queuedItems = 0;
    let deepest = 0;
    for (const c of this.#conns.values()) {
      const depth = c.box.length - c.head + (c.running?.length ?? 0);
      queuedItems += depth;
      if (depth > deepest) deepest = depth;
      if (c.running && now - c.runningSince >= slowMs) {
        const first = c.running[0]!;
        slowTurns.push({ conn: c.id, action: first.k === REQ ? actionOf(first.frame) : first.k === HOOK ? `(hook ${first.kind})` : '', requests: c.running.length, ms: Math.round(now - c.runningSince) });
      }
    }
    slowTurns.sort((a, b) => b.ms - a.ms);
    const actions: ActorServerStats['actions'] = {};
    for (const [k, t] of this.#actions) {
      const requests = t[ActionTiming.REQUESTS];
      // defineProperty: an action may be named "__proto__", which plain assignment would treat as the prototype.
      Object.defineProperty(actions, k, { enumerable: true, writable: true, configurable: true, value: {
        requests,
        meanMs: requests ? t[ActionTiming.RUN_SUM] / requests : 0,
        maxMs: t[ActionTiming.RUN_MAX],
        runMs: histogram(t, ActionTiming.RUN_COUNTS, ActionTiming.RUN_SUM),
        waitMs: histogram(t, ActionTiming.WAIT_COUNTS, ActionTiming.WAIT_SUM),
      } });
    }
    return {
      mailboxItems: queuedItems,
      deepestMailbox: deepest,
      slowTurns,
      actions,
      workerTurns: Object.fromEntries(this.#workerTurns),
      engine: this.raw.stats(),
      connections: this.#open,
      groups: this.#groups.size,
      queuedRequests: this.#waiting,
      pausedConnections: this.#paused,
      tasksInFlight: this.#tasksInFlight,
      ...this.#counters,
      workers: this.#pool?.threads.length ?? 0,
      slowConsumers: [...this.#slow].filter((c) => c.congested && !c.closed).length,
      heldPushBytes: this.#heldBytes,
      pushDrops: { ...this.#drops },
    };
  }

  /**
   * Graceful stop: new connections are refused (GOAWAY SHUTTING_DOWN), new
   * requests answered ERROR SHUTTING_DOWN in their place; turns in flight and
   * requests already queued run to the end.  Then every connection gets
   * GOAWAY SHUTTING_DOWN after its last answer and closes once its sends are
   * written; then the engine and the pool stop.  After `deadlineMs`, what is
   * still queued or running is answered ERROR SHUTTING_DOWN (late results are
   * discarded) and the connections close the same way.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#close(options);
  }

  /** The graceful drain under the name operators look for: exactly {@link close}. */
  shutdown(options: CloseOptions = {}): Promise<void> {
    return this.#close(options);
  }

  #close(options: CloseOptions): Promise<void> {
    if (this.#closing) return this.#closing;
    const deadlineMs = options.deadlineMs ?? 5000;
    if (!Number.isInteger(deadlineMs) || deadlineMs < 0) throw new TypeError(`options.deadlineMs must be an integer >= 0, got ${String(deadlineMs)}`);
    this.#shuttingDown = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#closing = (async () => {
      if (!this.#raw) {
        await this.#pool?.destroy();
        return;
      }
      // Requests already queued are accepted: they run.  Wait for them.
      await this.#whenSettled(deadlineMs);
      // Past the deadline: answer everything left, in order, without waiting.
      for (const c of this.#conns.values()) this.#abandon(c, ErrorCode.SHUTTING_DOWN, 'the server is shutting down');
      for (const c of this.#conns.values()) {
        if (!c.closed && !c.closing) this.#goAway(c, ErrorCode.SHUTTING_DOWN, 'server is shutting down');
      }
      this.#raw.flush();
      if (this.#open > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2000);
          this.#onAllClosed = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      // onClosed turns of the connections just closed run before the pool stops.
      await this.#whenSettled(1000);
      this.#stopped = true;
      if (this.#lateTimer) clearInterval(this.#lateTimer);
      clearInterval(this.#retireTimer ?? undefined);
      await this.#raw.close();
      await this.#pool?.destroy();
    })();
    return this.#closing;
  }

  /**
   * Wires process signals (default SIGTERM and SIGINT) to a graceful
   * `close(options)`.  The process is not exited: it ends by itself once the
   * server (and whatever else the application runs) has stopped.  Returns a
   * function that removes the handlers.
   */
  closeOnSignals(options: CloseOptions & { signals?: NodeJS.Signals[] } = {}): () => void {
    const { signals = ['SIGTERM', 'SIGINT'], ...closeOptions } = options;
    const onSignal = (): void => {
      off();
      void this.close(closeOptions);
    };
    const off = (): void => {
      for (const sig of signals) process.removeListener(sig, onSignal);
    };
    for (const sig of signals) process.on(sig, onSignal);
    return off;
  }

  // ---------------------------------------------------------------------------
  // Engine events
  // ---------------------------------------------------------------------------

  /**
   * Emits an event to the user's listeners.  A listener that throws must not
   * cut short the bookkeeping around the emit (the connection's hooks, the
   * rest of a task's results, close()): its error is rethrown on the next
   * tick instead, as an uncaught exception, as Node does for a throwing
   * listener of a socket.
   */
  #notify(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (e) {
      process.nextTick(() => {
        throw e;
      });
    }
  }

  #onOpen(conn: number, peer: PeerAddress): void {
    const c = new Conn(conn, peer);
    c.seen = this.#tick;
    this.#conns.set(conn, c);
    this.#open++;
    if (this.#shuttingDown) {
      this.#goAway(c, ErrorCode.SHUTTING_DOWN, 'server is shutting down');
      return;
    }
    this.#notify('connection', conn, { ...peer });
    if (this.#shape!.hasConnected) this.#enqueue(c, { k: HOOK, kind: TurnKind.CONNECTED, info: null });
  }

  #onFrame(conn: number, data: Buffer, check: number): void {
    const c = this.#conns.get(conn);
    if (c === undefined || c.closing || c.refusing || data.length === 0) return;
    c.seen = this.#tick;
    c.pingAt = 0;
    if (check !== 0) return this.#badFrame(c, data);
    switch (data[2]) {
      case Kind.REQUEST: {
        if (this.#shuttingDown) return this.#answer(c, data, ErrorCode.SHUTTING_DOWN, 'the server is shutting down');
        const max = this.options.maxQueue;
        if (max > 0 && this.#waiting >= max) return this.#answer(c, data, ErrorCode.OVERLOADED, `more than maxQueue (${max}) requests are waiting`);
        this.#waiting++;
        this.#counters.requests++;
        c.requests++;
        if (c.requests >= this.options.mailboxLimit && !c.paused) {
          c.paused = true;
          this.#paused++;
          this.raw.pauseReading(conn);
        }
        // The ring's memory is reused after this call: copy the frame.  One
        // clock reading per ring batch stands for the arrival of all its frames.
        this.#enqueue(c, { k: REQ, frame: Buffer.from(data), at: this.#arrival || (this.#arrival = sharedClockMs()) });
        return;
      }
      case Kind.PING: {
        // No action, code, body or attachment (protocol.md §3): else BAD_MESSAGE, no PONG.
        if (data[10] !== 0 || data.readUInt16LE(8) !== 0 || data.readUInt32LE(12) !== 0 || data.readUInt32LE(20) !== 0) {
          return this.#badFrame(c, data);
        }
        // Answered at once, not in mailbox order (protocol.md §13.4).
        const id = data.readUInt32LE(4);
        // Through #write: PONGs count toward the unsent bytes that stop reading (#congest).
        this.#write(c, this.#encoder.encodePrefixed(Messages.pong(id, { checksum: this.#checksum(data) })));
        return;
      }
      case Kind.PONG:
        return;
      case Kind.GOAWAY:
        // The client is leaving: nothing more is sent to it.
        c.closing = true;
        this.raw.closeConnection(conn);
        return;
      default:
        return this.#badFrame(c, data);
    }
  }

  #onClose(conn: number, info: CloseInfo): void {
    const c = this.#conns.get(conn);
    if (c === undefined) return;
    c.closed = true;
    this.#open--;
    if (c.paused) {
      c.paused = false;
      this.#paused--;
    }
    if (c.groups) for (const g of [...c.groups]) this.#leave(c, g);
    this.#dropHeld(c);
    this.#slow.delete(c);
    // What waits in the mailbox can no longer be answered.
    for (let i = c.head; i < c.box.length; i++) if (c.box[i]!.k === REQ) this.#waiting--;
    c.box = [];
    c.head = 0;
    c.requests = c.running ? c.running.filter((x) => x.k === REQ).length : 0;
    this.#notify('close', conn, info);
    if (this.#shape!.hasClosed) {
      this.#enqueue(c, { k: HOOK, kind: TurnKind.CLOSED, info: { reason: info.reason, message: c.closeReason ?? info.message } });
    } else this.#maybeForget(c);
    if (this.#open === 0) this.#onAllClosed?.();
    this.#checkSettled();
  }

  // ---------------------------------------------------------------------------
  // Mailboxes
  // ---------------------------------------------------------------------------

  #checksum(frame: Uint8Array): boolean {
    return this.options.requireChecksum || ((frame[3] ?? 0) & Flag.CHECKSUM) !== 0;
  }

  /** Answer a request without running it (in its place in the order). */
  #answer(c: Conn, frame: Buffer, code: number, message: string): void {
    const id = frame.readUInt32LE(4);
    this.#enqueue(c, { k: OUT, bytes: this.#encoder.encodePrefixed(Messages.error(id, code, message, undefined, { checksum: this.#checksum(frame) })), close: null, policy: ANSWER, key: null });
  }

  /** A frame the I/O thread's check (or the kind rules) refused: ERROR in order, or GOAWAY and close. */
  #badFrame(c: Conn, frame: Buffer): void {
    let error: unknown;
    try {
      this.#codec.decode(frame);
      error = new ProtocolError(ErrorCode.INTERNAL, 'the message failed the I/O thread\'s check');
    } catch (e) {
      error = e;
    }
    const { answer, close } = this.#codec.answerFor(error);
    if (close) {
      // Not `closing` yet: the answers queued before this (a turn running
      // now) still go out, then the GOAWAY and the close (#pump, #send).
      c.refusing = true;
      this.raw.pauseReading(c.id);
      this.#enqueue(c, { k: OUT, bytes: answer ? this.#encoder.encodePrefixed(answer) : new Uint8Array(0), close: (error as Error).message, policy: ANSWER, key: null });
    } else if (answer) this.#enqueue(c, { k: OUT, bytes: this.#encoder.encodePrefixed(answer), close: null, policy: ANSWER, key: null });
  }

  #enqueue(c: Conn, item: Item): void {
    if (item.k === OUT && c.running === null && c.head === c.box.length) {
      this.#send(c, item);
      return;
    }
    c.box.push(item);
    if (c.running === null && c.head === c.box.length - 1) this.#pump(c);
  }

  #send(c: Conn, item: { bytes: Uint8Array; close: string | null; policy: number; key: string | null }): void {
    if (item.bytes.length > 0) {
      if (item.policy === ANSWER) this.#write(c, item.bytes);
      else this.#pushOut(c, item.bytes, item.policy, item.key);
    }
    if (item.close !== null) {
      c.closing = true;
      c.closeReason = item.close;
      this.#raw!.closeConnection(c.id);
    }
  }

  /** Deliver a push frame to a connection; false when it is gone. */
  #deliver(id: number, frame: Uint8Array, policy: number, key: string | null): boolean {
    const c = this.#conns.get(id);
    if (c === undefined || c.closed || c.closing) return false;
    if (c.running === null && c.head === c.box.length) this.#pushOut(c, frame, policy, key);
    else c.box.push({ k: OUT, bytes: frame, close: null, policy, key });
    return true;
  }

  /**
   * Writes bytes to a connection and, every so many bytes, looks at how
   * much of what it was sent is still unsent: past sendHighWaterBytes it is a
   * slow consumer until the engine's drain event.
   */
  #write(c: Conn, bytes: Uint8Array): void {
    const raw = this.#raw!;
    if (!raw.write(c.id, bytes)) return;
    c.unchecked += bytes.length;
    if (c.unchecked >= this.#checkEvery) {
      c.unchecked = 0;
      if (!c.congested && raw.pendingBytes(c.id) > raw.options.sendHighWaterBytes) this.#congest(c);
    }
  }

  /**
   * Marks a slow consumer until the engine's drain event.  The engine owes
   * that event to every connection whose unsent bytes a send took above
   * sendHighWaterBytes (it arms it in the send call itself), so seeing them
   * above the mark here is enough to wait for it.
   */
  #congest(c: Conn): void {
    c.congested = true;
    this.#slow.add(c);
    // A client that does not read its answers (or PONGs) must not make the
    // server hold them without bound: stop taking its requests until the
    // engine's drain (TCP pushes back on it), as Netty stops auto-read on a
    // channel that is not writable.
    if (!c.sendPaused && !c.closed) {
      c.sendPaused = true;
      this.#raw!.pauseReading(c.id);
    }
  }

  /** A push reaches the wire, or, for a slow consumer, its policy. */
  #pushOut(c: Conn, bytes: Uint8Array, policy: number, key: string | null): void {
    if (!c.congested && c.held.length === 0) return this.#write(c, bytes);
    const p = policy < 0 ? this.#defaultPolicy : policy;
    const budget = this.options.outboundBudgetBytes;
    const drops = this.#drops;
    switch (p) {
      case P_DROP_NEW:
        drops.dropNew++;
        return;
      case P_CLOSE:
        drops.closed++;
        if (!c.closing) this.#goAway(c, ErrorCode.OVERLOADED, 'slow consumer');
        return;
      case P_COALESCE: {
        const i = c.held.findIndex((h) => h.key === key);
        if (i >= 0) {
          const delta = bytes.length - c.held[i]!.bytes.length;
          c.heldBytes += delta;
          this.#heldBytes += delta;
          c.held[i] = { bytes: copyIfView(bytes), key };
          drops.coalesced++;
          return;
        }
        break;
      }
    }
    c.held.push({ bytes: copyIfView(bytes), key });
    c.heldBytes += bytes.length;
    this.#heldBytes += bytes.length;
    if (c.heldBytes <= budget) return;
    if (p === P_QUEUE) {
      // A bounded queue that is full: the connection cannot keep up at all.
      drops.closed++;
      this.#dropHeld(c);
      if (!c.closing) this.#goAway(c, ErrorCode.OVERLOADED, 'slow consumer: outboundBudgetBytes exceeded');
      return;
    }
    // drop-oldest (and coalesce under a new key): the oldest held pushes go.
    while (c.heldBytes > budget && c.held.length > 0) {
      const old = c.held.shift()!;
      c.heldBytes -= old.bytes.length;
      this.#heldBytes -= old.bytes.length;
      drops.dropOldest++;
    }
  }

  #dropHeld(c: Conn): void {
    this.#heldBytes -= c.heldBytes;
    c.held = [];
    c.heldBytes = 0;
  }

  /** The engine's drain: the slow consumer caught up; its held pushes go, in order, while it keeps up. */
  #onDrain(conn: number): void {
    const c = this.#conns.get(conn);
    if (c === undefined) return;
    // A drain reported before sends made since took it above the mark again:
    // those sends armed the next one.
    if (this.#raw!.pendingBytes(conn) > this.#raw!.options.sendHighWaterBytes) return;
    c.congested = false;
    this.#slow.delete(c);
    if (c.sendPaused) {
      c.sendPaused = false;
      if (!c.paused && !c.closed && !c.refusing) this.#raw!.resumeReading(conn);
    }
    while (c.held.length > 0 && !c.congested && !c.closed && !c.closing) {
      const h = c.held.shift()!;
      c.heldBytes -= h.bytes.length;
      this.#heldBytes -= h.bytes.length;
      this.#write(c, h.bytes);
    }
  }

  /** Move the head of an idle mailbox: write OUT items, make the connection ready for a REQ or HOOK. */
  #pump(c: Conn): void {
    while (c.running === null && c.head < c.box.length) {
      const it = c.box[c.head]!;
      if (it.k === OUT) {
        c.box[c.head++] = undefined as never;
        if (!c.closed && !c.closing) this.#send(c, it);
        continue;
      }
      if (!c.ready) {
        c.ready = true;
        this.#ready.push(c);
      }
      break;
    }
    if (c.head === c.box.length) {
      c.box = [];
      c.head = 0;
    } else if (c.head > 1024 && c.head * 2 > c.box.length) {
      c.box = c.box.slice(c.head);
      c.head = 0;
    }
    this.#maybeForget(c);
  }

  #maybeForget(c: Conn): void {
    if (c.closed && c.running === null && c.head === c.box.length) this.#conns.delete(c.id);
  }

  #join(c: Conn, group: string): void {
    let g = this.#groups.get(group);
    if (!g) this.#groups.set(group, (g = new Set()));
    g.add(c.id);
    (c.groups ??= new Set()).add(group);
  }

  #leave(c: Conn, group: string): void {
    const g = this.#groups.get(group);
    if (g) {
      g.delete(c.id);
      if (g.size === 0) this.#groups.delete(group);
    }
    c.groups?.delete(group);
  }

  #goAway(c: Conn, code: number, reason: string): void {
    c.closing = true;
    c.closeReason = reason;
    this.#raw!.write(c.id, this.#encoder.encodePrefixed(Messages.goAway(code, reason, undefined, { checksum: this.options.requireChecksum })));
    this.#raw!.closeConnection(c.id);
  }

  #beat(): void {
    const tick = ++this.#tick;
    const timeoutTicks = Math.max(1, Math.ceil(this.options.heartbeatTimeoutMs / this.options.heartbeatIntervalMs));
    for (const c of this.#conns.values()) {
      if (c.closed || c.closing || c.seen >= tick - 1) continue;
      if (c.pingAt === 0) {
        c.pingAt = tick;
        this.#raw!.write(c.id, this.#encoder.encodePrefixed(Messages.ping(tick)));
      } else if (tick - c.pingAt >= timeoutTicks) {
        this.#goAway(c, ErrorCode.TIMEOUT, 'no answer to heartbeat');
      }
    }
  }

  // ---------------------------------------------------------------------------
  // Dispatch and results
  // ---------------------------------------------------------------------------

  #dispatch(): void {
    if (this.#stopped || this.#retiring !== 0) return;
    // One task per worker; once tasks keep a worker busy for QUEUE_BEHIND_MS
    // or more, one more per worker, which waits in piscina's queue: a worker
    // that finishes starts its next task at once instead of idling through
    // the round trip its answers set off (to the client and back).  Short
    // tasks are not queued: cutting the ready set into more, smaller tasks
    // costs more than that round trip.  And a task takes no more turns than
    // its worker gets through in about TASK_TARGET_MS (going by the mean
    // turn so far): with slow handlers, answers leave every few ms instead of
    // when a long task ends, and the turns spread evenly over the workers.
    const limit = this.#taskBusyMs >= QUEUE_BEHIND_MS ? 2 * this.#maxTasksInFlight : this.#maxTasksInFlight;
    while (this.#tasksInFlight < limit && this.#readyHead < this.#ready.length) {
      const free = limit - this.#tasksInFlight;
      const readyCount = this.#ready.length - this.#readyHead;
      const cap = this.#turnBusyMs > 0 ? Math.max(1, Math.floor(TASK_TARGET_MS / this.#turnBusyMs)) : Infinity;
      const share = Math.min(this.options.maxTurnsPerTask, cap, Math.ceil(readyCount / free));
      const conns: Conn[] = [];
      while (conns.length < share && this.#readyHead < this.#ready.length) {
        const c = this.#ready[this.#readyHead++]!;
        c.ready = false;
        if (c.running === null && c.head < c.box.length) conns.push(c);
      }
      if (this.#readyHead === this.#ready.length) {
        this.#ready = [];
        this.#readyHead = 0;
      }
      if (conns.length > 0) this.#runTask(conns);
    }
  }

  #runTask(conns: Conn[]): void {
    const now = performance.now();
    let infos: Task['infos'] = null;
    let total = 0;
    const maxPer = this.options.maxTurnsPerConnection;
    let longest = 1;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i]!;
      const first = c.box[c.head]!;
      const taken: Item[] = [];
      total += TASK_TURN_HEADER + c.peer.address.length;
      if (first.k === HOOK) {
        taken.push(first);
        c.box[c.head++] = undefined as never;
        if (first.info) (infos ??= new Array(conns.length).fill(null))[i] = first.info;
      } else {
        while (taken.length < maxPer && c.head < c.box.length && c.box[c.head]!.k === REQ) {
          const it = c.box[c.head]!;
          c.box[c.head++] = undefined as never;
          taken.push(it);
          total += TASK_REQUEST_HEADER + (it as { frame: Buffer }).frame.length;
        }
        this.#waiting -= taken.length;
        longest = Math.max(longest, taken.length);
      }
      c.running = taken;
      c.runningSince = now;
      c.turnId = ++this.#turnSeq;
      c.allowanceMs = 0;
      if (c.state) total += c.state.length;
    }
    const buf = viewOf(new ArrayBuffer(total), 0, total);
    let pos = 0;
    for (const c of conns) {
      const first = c.running![0]!;
      const n = first.k === REQ ? c.running!.length : 0;
      buf.writeDoubleLE(c.id, pos);
      buf[pos + 8] = first.k === HOOK ? first.kind : TurnKind.REQUESTS;
      const address = this.#addressBytes(c.peer.address);
      const alen = address.length;
      buf.set(address, pos + TASK_TURN_HEADER);
      buf[pos + 9] = alen;
      buf.writeUInt16LE(c.peer.port, pos + 10);
      buf[pos + 12] = c.peer.family;
      buf[pos + 13] = buf[pos + 14] = buf[pos + 15] = 0;
      buf.writeInt32LE(c.state ? c.state.length : -1, pos + 16);
      buf.writeUInt32LE(n, pos + 20);
      buf.writeDoubleLE(c.turnId, pos + 24);
      pos += TASK_TURN_HEADER + alen;
      if (c.state) {
        buf.set(c.state, pos);
        pos += c.state.length;
      }
      for (let k = 0; k < n; k++) {
        const { frame, at } = c.running![k] as { frame: Buffer; at: number };
        buf.writeUInt32LE(frame.length, pos);
        buf.writeDoubleLE(at, pos + 4);
        buf.set(frame, pos + TASK_REQUEST_HEADER);
        pos += TASK_REQUEST_HEADER + frame.length;
      }
    }
    const turnCount = conns.length;
    const task: Task = { count: turnCount, buf: new Uint8Array(buf.buffer, 0, total), infos };
    // Every worker busy: this one waits in piscina's queue (see #dispatch).
    const queued = this.#tasksInFlight >= this.#maxTasksInFlight;
    this.#tasksInFlight++;
    this.#counters.tasks++;
    this.#counters.turns += turnCount;
    // A worker stuck past every handler's time (a synchronous loop) is stopped:
    // aborting a running piscina task terminates its worker.  The clock starts
    // at posting, so a queued task is also allowed the longest a task ahead of
    // it may take; else it would be aborted with the stuck one it waited behind.
    // A request's turn may take the handler's time and, when it fails, as
    // much again for onTurnFailed (both bounded by handlerTimeoutMs).
    const limit = this.options.handlerTimeoutMs;
    const per = this.#shape!.hasTurnFailed ? 2 : 1;
    const watchdog = limit > 0 ? new Watchdog(limit * (1 + per * longest) + 1000 + (queued ? limit * (1 + per * maxPer) + 1000 : 0)) : null;
    const ids = conns.map((c) => c.turnId);
    if (watchdog !== null) for (const c of conns) c.allowanceMs = watchdog.ms;
    this.#pool!.run(task, { transferList: [buf.buffer] as never, signal: watchdog }).then(
      (result: TaskResult) => this.#onResult(conns, ids, result),
      (error: unknown) => this.#onTaskFailed(conns, error, watchdog?.aborted ?? false, ids),
    ).finally(() => {
      watchdog?.stop();
      this.#tasksInFlight--;
      this.#turnsEnded();
    });
  }

  /**
   * A peer address in latin1 bytes, as a task carries it.  A task's turns
   * mostly come from a few addresses, and encoding one is a call into C++
   * (Buffer.write), so the last one is kept while the address matches.
   */
  #addressBytes(address: string): Buffer {
    if (address !== this.#lastAddress) {
      this.#lastAddress = address;
      this.#lastAddressBytes = Buffer.from(address, 'latin1');
    }
    return this.#lastAddressBytes;
  }

  /** After turns ended: their answers go to the I/O threads before the next task is posted. */
  #turnsEnded(): void {
    this.#raw?.flush();
    this.#dispatch();
    this.#checkSettled();
  }

  /** `c` is still running turn number `turn` (not answered, failed or abandoned since). */
  #runs(c: Conn | undefined, turn: number): c is Conn {
    return c !== undefined && c.running !== null && c.turnId === turn;
  }

  #onResult(conns: Conn[], ids: number[], result: TaskResult): void {
    const late = result.late;
    const gone = !this.#heardFrom(result.thread, late?.length ?? 0);
    this.#taskBusyMs += (result.busyMs - this.#taskBusyMs) / 4;
    const ran = result.count + (late?.length ?? 0);
    if (ran > 0) this.#turnBusyMs += (result.busyMs / ran - this.#turnBusyMs) / 4;
    if (late !== null) {
      // Turns still awaiting: they stay running (nothing else of their
      // connection starts) and come back on the worker's late port, unless
      // they came already (then the turn running is another, or none).
      let lost: Conn[] | null = null;
      for (const i of late) {
        const c = conns[i]!;
        if (!this.#runs(c, ids[i]!)) continue;
        if (gone) (lost ??= []).push(c);
        else c.lateOn = result.thread;
      }
      this.#watchLate();
      if (lost) this.#onTaskFailed(lost, new Error('it ended while the turn awaited'), false);
    }
    this.#applyResult(conns, ids, late, result);
  }

  /**
   * Worker `thread` sent a result: it was busy until now, and `late` more
   * turns await on it (fewer when negative; #retireIdle).  False if it has
   * ended (its message was on its way): it is not added back.
   */
  #heardFrom(thread: number, late: number): boolean {
    if (this.#goneThreads.has(thread)) return false;
    this.#lastBusy.set(thread, performance.now());
    if (late !== 0) this.#lateTurns.set(thread, (this.#lateTurns.get(thread) ?? 0) + late);
    return true;
  }

  /** Turns that finished after their task returned. */
  #onLate(result: LateResult): void {
    if (this.#stopped) return;
    this.#heardFrom(result.thread, -result.turns.length);
    this.#applyResult(
      result.conns.map((id) => this.#conns.get(id)),
      result.turns,
      null,
      result,
    );
    this.#turnsEnded();
  }

  /** A worker ended: the turns still awaiting on it fail, as a crashed task's do. */
  #onWorkerGone(thread: number): void {
    const timedOut = this.#stoppedLate.delete(thread);
    this.#lastBusy.delete(thread);
    this.#lateTurns.delete(thread);
    // A result of this worker still on its way may name turns that were awaiting (#onResult).
    this.#goneThreads.set(thread, performance.now());
    // Its turns count on under 0 (no worker's threadId): stats().workerTurns
    // (and the metric per thread) holds the live workers, not every one ever.
    const turns = this.#workerTurns.get(thread);
    if (turns !== undefined) {
      this.#workerTurns.delete(thread);
      this.#workerTurns.set(0, (this.#workerTurns.get(0) ?? 0) + turns);
    }
    this.#retired(thread);
    if (this.#stopped) return;
    const lost: Conn[] = [];
    for (const c of this.#conns.values()) {
      if (c.lateOn === thread) {
        c.lateOn = 0;
        lost.push(c);
      }
    }
    if (lost.length === 0) return;
    this.#onTaskFailed(lost, new Error('it ended while the turn awaited'), timedOut);
    this.#turnsEnded();
  }

  /**
   * Stops one worker past minWorkers that has ended no task and no awaiting
   * turn for workerIdleTimeoutMs and runs no turn that awaits, even one of a
   * closed connection (its handler runs on; stopping the worker would cut it
   * off after its await).  Piscina's own idle timeout is off, see listen().
   * Only while no task is in flight, so none is on it; no task is posted
   * until it has exited (#onWorkerGone), else piscina could hand one to it.
   * Runs every quarter of the timeout (10 ms to 1 s), and forgets workers
   * that ended over GONE_KEPT_MS ago (#goneThreads).
   */
  #retireIdle(): void {
    const now = performance.now();
    for (const [thread, at] of this.#goneThreads) if (now - at > GONE_KEPT_MS) this.#goneThreads.delete(thread);
    const pool = this.#pool;
    if (pool === null || this.#stopped || this.#retiring !== 0 || this.#tasksInFlight > 0) return;
    const threads = pool.threads;
    if (threads.length <= this.options.minWorkers) return;
    for (const w of threads) {
      const thread = w.threadId;
      const last = this.#lastBusy.get(thread);
      if (last === undefined || now - last < this.options.workerIdleTimeoutMs) continue;
      if ((this.#lateTurns.get(thread) ?? 0) !== 0 || this.#stoppedLate.has(thread)) continue;
      this.#retiring = thread;
      // #onWorkerGone ends the retirement on the worker's 'exit'; this in case it never comes.
      void w.terminate().finally(() => this.#retired(thread));
      return;
    }
  }

  /** If `thread` is the worker being retired as idle: it is gone, tasks may be posted again. */
  #retired(thread: number): void {
    if (this.#retiring !== thread) return;
    this.#retiring = 0;
    this.#dispatch();
  }

  /**
   * The watchdog of turns that outlived their task: one past its task's
   * watchdog allowance (Conn.allowanceMs) has its worker stopped; a worker
   * whose event loop is stuck would never answer it.
   * Checked every second while any turn awaits.
   */
  #watchLate(): void {
    if (this.#lateTimer !== null || this.options.handlerTimeoutMs === 0) return;
    this.#lateTimer = setInterval(() => {
      const now = performance.now();
      let any = false;
      for (const c of this.#conns.values()) {
        if (c.lateOn === 0 || c.running === null) continue;
        any = true;
        if (now - c.runningSince > c.allowanceMs && !this.#stoppedLate.has(c.lateOn)) {
          const worker = this.#pool?.threads.find((w) => w.threadId === c.lateOn);
          if (worker) {
            this.#stoppedLate.add(c.lateOn);
            void worker.terminate();
          }
        }
      }
      if (!any) {
        clearInterval(this.#lateTimer!);
        this.#lateTimer = null;
      }
    }, 1000);
    this.#lateTimer.unref();
  }

  /**
   * Applies the turns in `result`: those of `conns` (turn numbers `ids`) in
   * order, leaving out the indices in `skip` (ascending: the turns a task
   * left awaiting).  A turn its connection no longer runs is passed over: it
   * was failed, or abandoned at shutdown (its answers were sent then), or, a
   * task's result coming after the late result, already applied.
   */
  #applyResult(conns: Array<Conn | undefined>, ids: number[], skip: number[] | null, result: TaskResult): void {
    const key = this.#goneThreads.has(result.thread) ? 0 : result.thread;
    this.#workerTurns.set(key, (this.#workerTurns.get(key) ?? 0) + result.count);
    for (const [action, t] of result.timing) {
      const a = this.#actions.get(action);
      if (a) {
        const max = Math.max(a[ActionTiming.RUN_MAX], t[ActionTiming.RUN_MAX]);
        for (let i = 0; i < ActionTiming.LENGTH; i++) a[i] += t[i];
        a[ActionTiming.RUN_MAX] = max;
      } else if (this.#actions.size < 1000) this.#actions.set(action, t);
    }
    const memory = result.buf.buffer;
    const base = result.buf.byteOffset;
    const buf = viewOf(memory, base, result.buf.byteLength);
    let pos = 0;
    for (let i = 0, k = 0, s = 0; i < result.count; i++, k++) {
      while (skip !== null && skip[s] === k) {
        s++;
        k++;
      }
      const c = conns[k];
      const stateLen = buf.readInt32LE(pos + 8);
      const outLen = buf.readUInt32LE(pos + 12);
      pos += RESULT_TURN_HEADER;
      const extras = result.extras?.[i] ?? null;
      let end = pos + Math.max(0, stateLen) + outLen;
      if (extras?.cmds) for (const cmd of extras.cmds) end = Math.max(end, cmdEnd(cmd));
      if (!this.#runs(c, ids[k]!)) {
        pos = end;
        continue;
      }
      const taken = c.running!;
      c.running = null;
      c.lateOn = 0;
      for (const x of taken) if (x.k === REQ) c.requests--;
      if (stateLen >= 0) {
        c.state = buf.subarray(pos, pos + stateLen).slice();
        pos += stateLen;
      }
      if (outLen > 0 && !c.closed && !c.closing) this.#write(c, viewOf(memory, base + pos, outLen));
      pos = end;
      if (extras !== null) {
        if (extras.failures) {
          for (const f of extras.failures) {
            this.#counters.failedTurns++;
            this.#notify('turnFailed', f);
          }
        }
        if (extras.cmds) this.#apply(c, extras.cmds, buf);
        if (extras.close !== null && !c.closed && !c.closing) this.#goAway(c, ErrorCode.NONE, extras.close || 'closed by the server');
      }
      this.#afterTurn(c);
    }
  }

  /** Applies a turn's commands in order. */
  #apply(c: Conn, cmds: Cmd[], buf: Buffer): void {
    for (const cmd of cmds) {
      switch (cmd[0]) {
        case CmdOp.PUSH_TO: {
          const frame = copyOnce(buf, cmd[2], cmd[3]);
          for (const id of cmd[1]) this.#deliverShared(id, frame, cmd[4], cmd[5]);
          break;
        }
        case CmdOp.PUSH_GROUP: {
          const frame = copyOnce(buf, cmd[2], cmd[3]);
          for (const id of this.#groups.get(cmd[1]) ?? []) if (id !== cmd[4]) this.#deliverShared(id, frame, cmd[5], cmd[6]);
          break;
        }
        case CmdOp.BROADCAST: {
          const frame = copyOnce(buf, cmd[1], cmd[2]);
          for (const id of this.#conns.keys()) if (id !== cmd[3]) this.#deliverShared(id, frame, cmd[4], cmd[5]);
          break;
        }
        case CmdOp.JOIN:
          if (!c.closed && !c.closing) this.#join(c, cmd[1]);
          break;
        case CmdOp.LEAVE:
          this.#leave(c, cmd[1]);
          break;
      }
    }
  }

  /** #deliver for a frame that lives in a result buffer: copied (once) only if it has to wait. */
  #deliverShared(id: number, frame: SharedFrame, policy: number, key: string | null): void {
    const c = this.#conns.get(id);
    if (c === undefined || c.closed || c.closing) return;
    if (c.running === null && c.head === c.box.length) this.#pushOut(c, c.congested || c.held.length > 0 ? frame.copy() : frame.view, policy, key);
    else c.box.push({ k: OUT, bytes: frame.copy(), close: null, policy, key });
  }

  /**
   * The turns of `conns` failed with their worker.  With `ids`, only a
   * connection still running that turn: one of a task's turns may have
   * answered on the late port before the task's failure came in, and its
   * connection moved on to another turn.
   */
  #onTaskFailed(conns: Conn[], error: unknown, timedOut: boolean, ids: number[] | null = null): void {
    if (this.#stopped) return; // the pool was destroyed under it at shutdown: nobody left to answer
    const code = timedOut ? ErrorCode.TIMEOUT : ErrorCode.INTERNAL;
    const message = timedOut
      ? `a handler kept its worker busy past handlerTimeoutMs (${this.options.handlerTimeoutMs} ms); the worker was stopped`
      : `the worker running this turn died: ${(error as Error)?.message ?? String(error)}`;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i]!;
      const taken = c.running;
      if (taken === null || (ids !== null && !this.#runs(c, ids[i]!))) continue;
      c.running = null;
      c.lateOn = 0;
      let first: TurnFailure | null = null;
      for (const it of taken) {
        let f: TurnFailure;
        if (it.k === REQ) {
          c.requests--;
          const id = it.frame.readUInt32LE(4);
          f = { conn: c.id, requestId: id, action: actionOf(it.frame), code, message };
          if (!c.closed && !c.closing) {
            this.#raw!.write(c.id, this.#encoder.encodePrefixed(Messages.error(id, code, message, undefined, { checksum: this.#checksum(it.frame) })));
          }
        } else f = { conn: c.id, requestId: 0, action: '', code, message };
        first ??= f;
        this.#counters.failedTurns++;
        this.#notify('turnFailed', f);
      }
      // The actor hears of it in a turn of its own, next, with the state from before.
      if (first && first.requestId !== 0 && this.#shape!.hasTurnFailed && !c.closed && !c.closing) {
        c.box.splice(c.head, 0, { k: HOOK, kind: TurnKind.FAILED, info: first });
      }
      this.#afterTurn(c);
    }
  }

  #afterTurn(c: Conn): void {
    if (c.paused && c.requests <= Math.floor(this.options.mailboxLimit / 2)) {
      c.paused = false;
      this.#paused--;
      if (!c.closed && !c.sendPaused && !c.refusing) this.#raw!.resumeReading(c.id);
    }
    this.#pump(c);
  }

  /** Shutdown past its deadline: answer what c has running and waiting, in order, and forget it. */
  #abandon(c: Conn, code: number, message: string): void {
    const items = [...(c.running ?? []), ...c.box.slice(c.head)];
    if (c.running) c.requests -= c.running.filter((x) => x.k === REQ).length;
    c.running = null;
    c.lateOn = 0;
    for (let i = c.head; i < c.box.length; i++) {
      const it = c.box[i]!;
      if (it.k === REQ) {
        this.#waiting--;
        c.requests--;
      }
    }
    c.box = [];
    c.head = 0;
    if (c.closed || c.closing) return this.#maybeForget(c);
    for (const it of items) {
      if (it.k === REQ) {
        const id = it.frame.readUInt32LE(4);
        this.#raw!.write(c.id, this.#encoder.encodePrefixed(Messages.error(id, code, message, undefined, { checksum: this.#checksum(it.frame) })));
      } else if (it.k === OUT) this.#send(c, it);
    }
  }

  /** Resolves when nothing is queued or running, or after `ms`. */
  async #whenSettled(ms: number): Promise<void> {
    if (this.#settled()) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#onSettled = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#onSettled = null;
  }

  #settled(): boolean {
    if (this.#tasksInFlight > 0 || this.#waiting > 0) return false;
    for (const c of this.#conns.values()) if (c.running !== null || c.head < c.box.length) return false;
    return true;
  }

  #checkSettled(): void {
    if (this.#onSettled && this.#settled()) this.#onSettled();
  }
}

interface SharedFrame {
  view: Uint8Array;
  copy(): Uint8Array;
}

function copyOnce(buf: Buffer, off: number, len: number): SharedFrame {
  const view = buf.subarray(off, off + len);
  let copied: Uint8Array | null = null;
  return { view, copy: () => (copied ??= view.slice()) };
}

/** Where the frame a command pushes ends in the result buffer (0 for commands without one). */
function cmdEnd(cmd: Cmd): number {
  switch (cmd[0]) {
    case CmdOp.PUSH_TO:
    case CmdOp.PUSH_GROUP:
      return cmd[2] + cmd[3];
    case CmdOp.BROADCAST:
      return cmd[1] + cmd[2];
    default:
      return 0;
  }
}

/** A private copy of bytes that may be a view into a larger or reused buffer. */
function copyIfView(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

/** A histogram of a snapshot from the counts at `at` and the sum at `sum` of an ActionTiming record. */
function histogram(t: Float64Array, at: number, sum: number): TimeHistogram {
  const counts = Array.from(t.subarray(at, at + TURN_TIME_BUCKETS));
  return { buckets: TURN_TIME_BUCKETS_MS, counts, count: t[ActionTiming.REQUESTS], sum: t[sum] };
}

function actionOf(frame: Buffer): string {
  const n = frame[10] ?? 0;
  return frame.length >= 28 + n ? frame.toString('utf8', 28, 28 + n) : '';
}

/** Creates a socket-actor server; call `listen()` on it. */
export function createServer(options: ActorServerOptions): ActorServer {
  return new ActorServer(options);
}

/** Creates a socket-actor server and starts listening; resolves when it accepts connections. */
export function listen(options: ActorServerOptions): Promise<ActorServer> {
  return new ActorServer(options).listen();
}

export type { OutgoingMessage };
