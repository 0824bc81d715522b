// actor-worker.ts - the piscina worker that runs socket-actor turns.
//
// One task is a batch: many connections' turns, and for one connection
// several queued requests that run in order (src/actor/wire.ts draws the
// buffers).  Turns of different connections run concurrently (their sync
// parts one after the other, their awaits interleaved); requests of one
// connection strictly one after the other, each seeing the state the
// previous one left.  Everything a turn sends is encoded here, so the main
// thread only copies bytes.
//
// At start the worker hands the main thread one end of a MessageChannel
// (through piscina's parentPort 'message' event); the other end carries
// comlink calls from handlers (ctx.main.onlineCount() ...).
import { MessageChannel, parentPort, threadId } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import * as Comlink from 'comlink';
import { Packr } from 'msgpackr';
import { workerData } from 'piscina';
import {
  type ClosedInfo,
  type MainThreadApi,
  PUSH_POLICIES,
  type PushOptions,
  type PushPolicy,
  ReplyError,
  type SocketActor,
  type TurnContext,
  type TurnFailure,
  actorClassOf,
  checkGroup,
  codeError,
  isSendableCode,
  shown,
} from '../src/actor/actor.js';
import { bucketOf, sharedClockMs } from '../src/actor/timing.js';
import {
  ActionTiming,
  type Cmd,
  CmdOp,
  LATE_PORT_KEY,
  type LateResult,
  MAIN_PORT_KEY,
  POLICY_CODES,
  RESULT_TURN_HEADER,
  TASK_REQUEST_HEADER,
  TASK_TURN_HEADER,
  type Task,
  type TaskResult,
  THREAD_KEY,
  TurnKind,
  type TurnExtras,
  type TurnSpec,
  type WorkerInit,
} from '../src/actor/wire.js';
import type { PeerAddress } from '../src/options.js';
import { MessageDecoder } from '../src/protocol/decoder.js';
import { MessageEncoder, Messages, type OutgoingMessage, type SendOptions } from '../src/protocol/encoder.js';
import { ErrorCode, ProtocolError } from '../src/protocol/errors.js';
import { Flag } from '../src/protocol/layout.js';
import { answerDecodeError } from '../src/protocol/server.js';
import { viewOf } from '../src/view.js';

const init = workerData as WorkerInit;
const decoder = new MessageDecoder({ ...init.codec, copyBuffers: false }); // task buffers are never reused
const encoder = new MessageEncoder();
// State is private to the server (never on the wire), so msgpackr's own types are fine:
// structuredClone mode keeps Maps, Sets, Dates, typed arrays and cycles; records
// are self-describing in each packed state, so any worker can unpack any state.
const packr = new Packr({ structuredClone: true });
const EMPTY = Buffer.alloc(0);
const TIMED_OUT = Symbol('timed out');

const channel = new MessageChannel();
// Results of turns that finish after their task returned (they awaited).
const lateChannel = new MessageChannel();
parentPort?.postMessage({ [MAIN_PORT_KEY]: channel.port2, [LATE_PORT_KEY]: lateChannel.port2, [THREAD_KEY]: threadId }, [channel.port2, lateChannel.port2]);
channel.port1.unref();
lateChannel.port1.unref();
const main = Comlink.wrap<MainThreadApi>(channel.port1 as unknown as Comlink.Endpoint) as unknown as MainThreadApi;

let actorClass: Promise<typeof SocketActor> | undefined;
/** The actor class once loaded: tasks after the first start at once, not a microtask later. */
let loadedActor: typeof SocketActor | undefined;
function loadActor(): Promise<typeof SocketActor> {
  actorClass ??= import(init.actor).then((m: Record<string, unknown>) => (loadedActor = actorClassOf(m, init.actor)));
  return actorClass;
}

/** A command whose push frame is still a Buffer; offsets are assigned when the result is assembled. */
type PendingCmd =
  | { op: 0; targets: number[]; frame: Buffer; policy: number; key: string | null }
  | { op: 1; group: string; frame: Buffer; except: number; policy: number; key: string | null }
  | { op: 2; frame: Buffer; except: number; policy: number; key: string | null }
  | { op: 3 | 4; group: string };

interface TurnOut {
  spec: TurnSpec;
  state: Uint8Array | null;
  out: Buffer[];
  cmds: PendingCmd[];
  close: string | null;
  failures: TurnFailure[] | null;
}

/** The context of one request (or hook); inert once its turn is over or timed out. */
class Ctx implements TurnContext {
  readonly main = main;
  replied = false;
  live = true;
  /** Frames for this connection, sent after the reply, in order. */
  selfPushes: Buffer[] = [];
  reply$: Buffer | null = null;
  constructor(
    readonly turn: TurnOut,
    readonly conn: number,
    readonly peer: PeerAddress,
    readonly action: string,
    readonly requestId: number,
    readonly attachment: Buffer,
    readonly checksum: boolean,
  ) {}

  reply(body?: unknown, options: SendOptions = {}): void {
    if (!this.live) return;
    if (this.requestId === 0) throw new Error('a hook has no request to reply to');
    if (this.replied) throw new Error(`request ${this.requestId} was already answered`);
    this.replied = true;
    this.reply$ = encoder.encodePrefixed(Messages.reply(this.requestId, body, { checksum: this.checksum, ...options }));
  }

  error(code: number, message: string, data?: unknown): void {
    if (!isSendableCode(code)) throw codeError('ctx.error()', code);
    if (!this.live) return;
    if (this.requestId === 0) throw new Error('a hook has no request to answer');
    if (this.replied) throw new Error(`request ${this.requestId} was already answered`);
    this.replied = true;
    this.reply$ = encoder.encodePrefixed(Messages.error(this.requestId, code, message, data, { checksum: this.checksum }));
  }

  push(topic: string, body?: unknown, options?: SendOptions): void {
    if (!this.live) return;
    this.selfPushes.push(encoder.encodePrefixed(Messages.push(topic, body, options)));
  }

  // The arguments are checked even for a turn no longer live, and before
  // anything is queued: a mistake throws in the handler, where it was made.
  pushTo(conns: number | readonly number[], topic: string, body?: unknown, options: PushOptions = {}): void {
    const list = typeof conns === 'number' ? [conns] : Array.isArray(conns) ? [...conns] : null;
    if (list === null || !list.every((c) => Number.isSafeInteger(c))) {
      throw new TypeError(`ctx.pushTo(conns, ...): conns must be a connection token or an array of them, got ${shown(conns)}`);
    }
    const { exceptSelf: _e, policy, coalesceKey, ...send } = options;
    const how = policyOf(policy, coalesceKey);
    if (!this.live) return;
    const frame = encoder.encodePrefixed(Messages.push(topic, body, send));
    const others = list.filter((c) => c !== this.conn);
    if (others.length !== list.length) this.selfPushes.push(frame);
    if (others.length > 0) this.turn.cmds.push({ op: CmdOp.PUSH_TO, targets: others, frame, ...how });
  }

  pushToGroup(group: string, topic: string, body?: unknown, options: PushOptions = {}): void {
    checkGroup('ctx.pushToGroup', group);
    const { exceptSelf, policy, coalesceKey, ...send } = options;
    const how = policyOf(policy, coalesceKey);
    if (!this.live) return;
    const frame = encoder.encodePrefixed(Messages.push(topic, body, send));
    this.turn.cmds.push({ op: CmdOp.PUSH_GROUP, group, frame, except: exceptSelf ? this.conn : -1, ...how });
  }

  broadcast(topic: string, body?: unknown, options: PushOptions = {}): void {
    const { exceptSelf, policy, coalesceKey, ...send } = options;
    const how = policyOf(policy, coalesceKey);
    if (!this.live) return;
    const frame = encoder.encodePrefixed(Messages.push(topic, body, send));
    this.turn.cmds.push({ op: CmdOp.BROADCAST, frame, except: exceptSelf ? this.conn : -1, ...how });
  }

  join(group: string): void {
    checkGroup('ctx.join', group);
    if (this.live) this.turn.cmds.push({ op: CmdOp.JOIN, group });
  }

  leave(group: string): void {
    checkGroup('ctx.leave', group);
    if (this.live) this.turn.cmds.push({ op: CmdOp.LEAVE, group });
  }

  close(reason = ''): void {
    if (typeof reason !== 'string') throw new TypeError(`ctx.close(reason): reason must be a string, got ${shown(reason)}`);
    if (this.live) this.turn.close = reason;
  }
}

/** A push policy as a command carries it; a bad one throws in the handler (so the handler's caller hears of it). */
function policyOf(policy: PushPolicy | undefined, key: string | undefined): { policy: number; key: string | null } {
  if (policy === undefined) return { policy: -1, key: null };
  const code = (POLICY_CODES as Record<string, number>)[policy];
  if (code === undefined) throw new TypeError(`push policy must be one of ${PUSH_POLICIES.join(', ')} (got ${String(policy)})`);
  if (policy === 'coalesce' && typeof key !== 'string') throw new TypeError("push policy 'coalesce' needs a coalesceKey string");
  return { policy: code, key: policy === 'coalesce' ? key! : null };
}

function withTimeout(p: PromiseLike<unknown>, ms: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(TIMED_OUT), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Calls `fn`; awaits a returned thenable within the handler timeout.  Resolves TIMED_OUT when it ran too long. */
async function call(fn: () => unknown): Promise<unknown> {
  const limit = init.handlerTimeoutMs;
  const t0 = limit > 0 ? performance.now() : 0;
  const r = fn();
  if (isThenable(r)) return limit > 0 ? withTimeout(r, Math.max(1, limit - (performance.now() - t0))) : await r;
  if (limit > 0 && performance.now() - t0 > limit) return TIMED_OUT;
  return r;
}

function isThenable(r: unknown): r is PromiseLike<unknown> {
  return r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function';
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// The hot path stays synchronous: a turn whose handlers all return plain
// values runs without a single await (no promise per request), and only a
// handler that returns a thenable switches its turn to the async path.

/** A task's bytes: its memory, where they start in it, and one Buffer over them, made once per task. */
interface TaskBytes {
  readonly memory: ArrayBufferLike;
  readonly base: number;
  readonly view: Buffer;
}

/** Runs one turn; returns the TurnOut, or a Promise of it once something awaited. */
function runTurn(Actor: typeof SocketActor, spec: TurnSpec, bytes: TaskBytes, at: number): TurnOut | Promise<TurnOut> {
  const turn: TurnOut = { spec, state: null, out: [], cmds: [], close: null, failures: null };
  const actor = new Actor() as SocketActor<unknown>;
  actor.conn = spec.conn;
  let pos = at;
  if (spec.stateLen >= 0) {
    actor.state = packr.unpack(bytes.view.subarray(pos, pos + spec.stateLen));
    pos += spec.stateLen;
  } else {
    actor.state = actor.initialState();
  }
  switch (spec.kind) {
    case TurnKind.CONNECTED:
      return runHook(actor, turn, 'onConnected', null).then(() => finish(actor, turn));
    case TurnKind.CLOSED:
      // The actor is gone after this: no state back.
      return runHook(actor, turn, 'onClosed', spec.info as ClosedInfo).then(() => turn);
    case TurnKind.FAILED:
      return runHook(actor, turn, 'onTurnFailed', spec.info as TurnFailure).then(() => finish(actor, turn));
    default:
      return runRequests(actor, turn, bytes, pos, 0);
  }
}

function runRequests(actor: SocketActor<unknown>, turn: TurnOut, bytes: TaskBytes, pos: number, from: number): TurnOut | Promise<TurnOut> {
  const n = turn.spec.n;
  const view = bytes.view;
  for (let i = from; i < n; i++) {
    const len = view.readUInt32LE(pos);
    const arrival = view.readDoubleLE(pos + 4);
    // (runTask walked the layout: the request lies inside the task's bytes.)
    const frame = viewOf(bytes.memory, bytes.base + pos + TASK_REQUEST_HEADER, len);
    pos += TASK_REQUEST_HEADER + len;
    const r = runRequest(actor, turn, frame, arrival);
    if (r === null) continue;
    const next = pos;
    const rest = async (failure: TurnFailure | null): Promise<TurnOut> => {
      if (failure) await runHook(actor, turn, 'onTurnFailed', failure);
      return runRequests(actor, turn, bytes, next, i + 1);
    };
    return r instanceof Promise ? r.then(rest) : rest(r);
  }
  return finish(actor, turn);
}

function finish(actor: SocketActor<unknown>, turn: TurnOut): TurnOut {
  if (actor.state !== undefined) turn.state = Buffer.from(packr.pack(actor.state)); // pack() reuses its buffer: copy
  return turn;
}

async function runHook(actor: SocketActor<unknown>, turn: TurnOut, name: 'onConnected' | 'onClosed' | 'onTurnFailed', arg: unknown): Promise<void> {
  const fn = actor[name] as ((...a: unknown[]) => unknown) | undefined;
  if (typeof fn !== 'function') return;
  const spec = turn.spec;
  const ctx = new Ctx(turn, spec.conn, spec.peer, '', 0, EMPTY, init.codec.requireChecksum);
  try {
    const r = await call(() => (name === 'onConnected' ? fn.call(actor, ctx) : fn.call(actor, arg, ctx)));
    if (r === TIMED_OUT) fail(turn, 0, '', ErrorCode.TIMEOUT, `${name} ran longer than handlerTimeoutMs (${init.handlerTimeoutMs} ms)`);
  } catch (e) {
    fail(turn, 0, '', ErrorCode.HANDLER_ERROR, `${name} threw: ${messageOf(e)}`);
  } finally {
    ctx.live = false;
  }
  turn.out.push(...ctx.selfPushes);
}

/**
 * Runs one request; its answer and pushes go to turn.out.  Returns null when
 * it succeeded synchronously, the failure when it failed synchronously, or a
 * Promise of either when the handler returned a thenable.
 */
function runRequest(actor: SocketActor<unknown>, turn: TurnOut, frame: Buffer, arrival: number): TurnFailure | null | Promise<TurnFailure | null> {
  let msg;
  try {
    msg = decoder.decode(frame);
  } catch (e) {
    const { answer } = answerDecodeError(e, init.codec.requireChecksum);
    if (answer) turn.out.push(encoder.encodePrefixed(answer));
    return null; // bad input is the client's failure, not the actor's
  }
  const spec = turn.spec;
  const id = msg.id;
  const checksum = init.codec.requireChecksum || (msg.flags & Flag.CHECKSUM) !== 0;
  const Actor = actor.constructor as typeof SocketActor;
  const handler = Object.hasOwn(Actor.handlers, msg.action) ? Actor.handlers[msg.action] : undefined;
  if (handler === undefined) {
    turn.out.push(encoder.encodePrefixed(Messages.error(id, ErrorCode.UNKNOWN_ACTION, `no handler for action "${msg.action}"`, undefined, { checksum })));
    return null;
  }
  const ctx = new Ctx(turn, spec.conn, spec.peer, msg.action, id, msg.attachment, checksum);
  const limit = init.handlerTimeoutMs;
  const t0 = performance.now();
  const wait = t0 + toSharedClock - arrival;
  let r: unknown;
  try {
    r = handler.call(actor, msg.body, ctx);
  } catch (e) {
    timed(ctx.action, performance.now() - t0, wait);
    return settle(ctx, turn, e, true);
  }
  if (isThenable(r)) {
    const p = limit > 0 ? withTimeout(r, limit) : Promise.resolve(r);
    return p.then(
      (v) => (timed(ctx.action, performance.now() - t0, wait), settle(ctx, turn, v, false)),
      (e: unknown) => (timed(ctx.action, performance.now() - t0, wait), settle(ctx, turn, e, true)),
    );
  }
  // A synchronous handler cannot be interrupted; past its time its result is discarded all the same.
  const ms = performance.now() - t0;
  timed(ctx.action, ms, wait);
  return settle(ctx, turn, limit > 0 && ms > limit ? TIMED_OUT : r, false);
}

/**
 * What to add to this thread's performance.now() to get the shared clock
 * (timing.ts): a handler's start is taken with performance.now() anyway, and
 * hrtime per request would cost a call each.  The difference is constant for
 * the thread, and one sample (hrtime, then performance.now()) can only come
 * out too small, by however long the thread was held up between the two
 * reads; so every task takes one more sample and the largest stands.
 */
let toSharedClock = -Infinity;
function sampleClockOffset(): void {
  const shared = sharedClockMs();
  const offset = shared - performance.now();
  if (offset > toSharedClock) toSharedClock = offset;
}
/** Handler run and wait times of the current task, by action (see TaskResult.timing). */
let timing = new Map<string, Float64Array>();
function timed(action: string, runMs: number, waitMs: number): void {
  let t = timing.get(action);
  if (t === undefined) timing.set(action, (t = new Float64Array(ActionTiming.LENGTH)));
  if (waitMs < 0) waitMs = 0; // an offset sampled a little too small can put a very short wait below 0
  t[ActionTiming.REQUESTS]++;
  t[ActionTiming.RUN_SUM] += runMs;
  if (runMs > t[ActionTiming.RUN_MAX]) t[ActionTiming.RUN_MAX] = runMs;
  t[ActionTiming.WAIT_SUM] += waitMs;
  t[ActionTiming.RUN_COUNTS + bucketOf(runMs)]++;
  t[ActionTiming.WAIT_COUNTS + bucketOf(waitMs)]++;
}

/** Turns a handler's outcome into its answer (then its own pushes) in turn.out; returns the failure or null. */
function settle(ctx: Ctx, turn: TurnOut, value: unknown, threw: boolean): TurnFailure | null {
  const id = ctx.requestId;
  const action = ctx.action;
  const checksum = ctx.checksum;
  let failure: TurnFailure | null = null;
  if (!threw) {
    if (value === TIMED_OUT) {
      // Its pushes are discarded; an answer it already gave (ctx.reply) stands.
      ctx.live = false;
      ctx.selfPushes = [];
      failure = fail(turn, id, action, ErrorCode.TIMEOUT, `handler "${action}" ran longer than handlerTimeoutMs (${init.handlerTimeoutMs} ms)`);
      if (!ctx.replied) ctx.reply$ = encoder.encodePrefixed(Messages.error(id, ErrorCode.TIMEOUT, failure.message, undefined, { checksum }));
    } else if (!ctx.replied) {
      try {
        ctx.reply$ = encoder.encodePrefixed(Messages.reply(id, value, { checksum }));
      } catch (e) {
        return settle(ctx, turn, new Error(`the reply could not be encoded: ${messageOf(e)}`), true);
      }
    }
  } else {
    const e = value;
    ctx.live = false;
    // A ProtocolError passes its code on only if it is one to send: not, for
    // example, the local CONNECTION_CLOSED of a client call the handler made.
    const code = e instanceof ReplyError || (e instanceof ProtocolError && isSendableCode(e.code)) ? e.code : ErrorCode.HANDLER_ERROR;
    const data = e instanceof ReplyError ? e.data : undefined;
    if (ctx.replied) {
      // It answered, then threw: the answer stands, the failure is reported.
      failure = fail(turn, id, action, code, messageOf(e));
    } else {
      // A ReplyError is an answer the handler chose, not a failure.
      if (!(e instanceof ReplyError)) failure = fail(turn, id, action, code, messageOf(e));
      try {
        ctx.reply$ = encoder.encodePrefixed(Messages.error(id, code, messageOf(e), data, { checksum }));
      } catch {
        ctx.reply$ = encoder.encodePrefixed(Messages.error(id, code, messageOf(e), undefined, { checksum }));
      }
    }
  }
  ctx.live = false;
  turn.out.push(ctx.reply$!);
  if (ctx.selfPushes.length > 0) turn.out.push(...ctx.selfPushes);
  return failure;
}

function fail(turn: TurnOut, requestId: number, action: string, code: number, message: string): TurnFailure {
  const f: TurnFailure = { conn: turn.spec.conn, requestId, action, code, message };
  (turn.failures ??= []).push(f);
  return f;
}

/** Lays every turn's bytes into one buffer (see wire.ts). */
function assemble(outs: TurnOut[], busyMs: number): TaskResult {
  const started = performance.now();
  let total = 0;
  for (const t of outs) {
    total += RESULT_TURN_HEADER;
    if (t.state) total += t.state.length;
    for (const f of t.out) total += f.length;
    for (const c of t.cmds) if ('frame' in c) total += c.frame.length;
  }
  const buf = Buffer.from(new ArrayBuffer(total));
  let pos = 0;
  let extras: Array<TurnExtras | null> | null = null;
  for (let i = 0; i < outs.length; i++) {
    const t = outs[i]!;
    const header = pos;
    pos += RESULT_TURN_HEADER;
    let stateLen = -1;
    if (t.state) {
      buf.set(t.state, pos);
      pos += t.state.length;
      stateLen = t.state.length;
    }
    const start = pos;
    for (const f of t.out) {
      buf.set(f, pos);
      pos += f.length;
    }
    buf.writeDoubleLE(t.spec.conn, header);
    buf.writeInt32LE(stateLen, header + 8);
    buf.writeUInt32LE(pos - start, header + 12);
    let cmds: Cmd[] | null = null;
    if (t.cmds.length > 0) {
      cmds = [];
      for (const c of t.cmds) {
        let off = 0;
        if ('frame' in c) {
          off = pos;
          buf.set(c.frame, pos);
          pos += c.frame.length;
        }
        switch (c.op) {
          case CmdOp.PUSH_TO: cmds.push([CmdOp.PUSH_TO, c.targets, off, c.frame.length, c.policy, c.key]); break;
          case CmdOp.PUSH_GROUP: cmds.push([CmdOp.PUSH_GROUP, c.group, off, c.frame.length, c.except, c.policy, c.key]); break;
          case CmdOp.BROADCAST: cmds.push([CmdOp.BROADCAST, off, c.frame.length, c.except, c.policy, c.key]); break;
          default: cmds.push([c.op, c.group]);
        }
      }
    }
    if (cmds !== null || t.close !== null || t.failures !== null) {
      extras ??= new Array<TurnExtras | null>(outs.length).fill(null);
      extras[i] = { cmds, close: t.close, failures: t.failures };
    }
  }
  const t = timing;
  timing = new Map();
  return { count: outs.length, buf: new Uint8Array(buf.buffer, 0, total), extras, thread: threadId, timing: t, busyMs: busyMs + (performance.now() - started), late: null };
}

// Turns that finished after their task returned, sent together once the
// turns finishing in the same turn of the event loop are in.
let lateOuts: TurnOut[] = [];
function lateDone(t: TurnOut): void {
  if (lateOuts.push(t) === 1) setImmediate(sendLate);
}
function sendLate(): void {
  const outs = lateOuts;
  lateOuts = [];
  const r = assemble(outs, 0) as LateResult;
  r.conns = outs.map((t) => t.spec.conn);
  r.turns = outs.map((t) => t.spec.turn);
  lateChannel.port1.postMessage(r, [r.buf.buffer as ArrayBuffer]);
}

/**
 * A turn that could not run at all (its state did not unpack, initialState
 * threw): every request gets ERROR INTERNAL, the state stays as it was.
 */
function brokenTurn(spec: TurnSpec, bytes: TaskBytes, at: number, e: unknown): TurnOut {
  const turn: TurnOut = { spec, state: null, out: [], cmds: [], close: null, failures: null };
  const view = bytes.view;
  let pos = at + Math.max(0, spec.stateLen);
  if (spec.stateLen >= 0) turn.state = Buffer.from(view.subarray(at, pos));
  const message = `the actor could not run: ${messageOf(e)}`;
  for (let i = 0; i < spec.n; i++) {
    const len = view.readUInt32LE(pos);
    const id = len >= 8 ? view.readUInt32LE(pos + TASK_REQUEST_HEADER + 4) : 0;
    pos += TASK_REQUEST_HEADER + len;
    turn.out.push(encoder.encodePrefixed(Messages.error(id, ErrorCode.INTERNAL, message, undefined, { checksum: init.codec.requireChecksum })));
    fail(turn, id, '', ErrorCode.INTERNAL, message);
  }
  if (spec.n === 0) fail(turn, 0, '', ErrorCode.INTERNAL, message);
  return turn;
}

/**
 * The peer address of a turn.  The turns of a task mostly come from a few
 * addresses, and decoding one is a call into C++ (6.8% of the worker's perf
 * samples in bench:turn when it was done every turn), so the last one is
 * kept and reused while the bytes match.
 */
let lastAddress = '';
let lastAddressBytes = Buffer.alloc(0);
function addressAt(view: Buffer, at: number, len: number): string {
  const last = lastAddressBytes;
  if (len === last.length) {
    let i = 0;
    while (i < len && view[at + i] === last[i]) i++;
    if (i === len) return lastAddress;
  }
  lastAddress = view.toString('latin1', at, at + len);
  lastAddressBytes = Buffer.from(view.subarray(at, at + len));
  return lastAddress;
}

/** The piscina task: run a batch of turns. */
export default async function runTask(task: Task): Promise<TaskResult> {
  const Actor = loadedActor ?? (await loadActor());
  const started = performance.now();
  sampleClockOffset();
  const memory = task.buf.buffer;
  const base = task.buf.byteOffset;
  const view = viewOf(memory, base, task.buf.byteLength);
  const bytes: TaskBytes = { memory, base, view };
  let pos = 0;
  // Each turn's output, in the task's order: at once for a turn that did not
  // await, when it settles for one that did (see the end).
  const slots = new Array<TurnOut | null>(task.count).fill(null);
  let waited = false;
  let returned = false;
  for (let i = 0; i < task.count; i++) {
    const alen = view[pos + 9]!;
    const spec: TurnSpec = {
      conn: view.readDoubleLE(pos),
      kind: view[pos + 8]!,
      peer: {
        address: addressAt(view, pos + TASK_TURN_HEADER, alen),
        port: view.readUInt16LE(pos + 10),
        family: view[pos + 12] === 6 ? 6 : 4,
      },
      stateLen: view.readInt32LE(pos + 16),
      n: view.readUInt32LE(pos + 20),
      info: task.infos?.[i] ?? null,
      turn: view.readDoubleLE(pos + 24),
    };
    pos += TASK_TURN_HEADER + alen;
    const at = pos;
    try {
      const out = runTurn(Actor, spec, bytes, at);
      if (out instanceof Promise) {
        waited = true;
        out
          .catch((e: unknown) => brokenTurn(spec, bytes, at, e))
          .then((t) => {
            if (returned) lateDone(t);
            else slots[i] = t;
          });
      } else slots[i] = out;
    } catch (e) {
      slots[i] = brokenTurn(spec, bytes, at, e);
    }
    if (spec.stateLen > 0) pos += spec.stateLen;
    for (let k = 0; k < spec.n; k++) pos += TASK_REQUEST_HEADER + view.readUInt32LE(pos);
  }
  // Only the synchronous run counts as busy: a turn awaiting I/O holds no
  // thread, and the server must not take it for slow work (server.ts #dispatch).
  const busyMs = performance.now() - started;
  if (!waited) return assemble(slots as TurnOut[], busyMs);
  // An async handler that did not really wait (or waited on promises that
  // were settled) ends in the microtasks: let those end here and go with
  // the task, not one more message each.
  await new Promise((r) => setImmediate(r));
  returned = true;
  // A turn still awaiting does not hold the task (its answers would wait
  // for the slowest turn of the task, and its worker would take no other
  // task meanwhile): it goes to the main thread when it ends (lateDone).
  const outs: TurnOut[] = [];
  let late: number[] | null = null;
  for (let i = 0; i < slots.length; i++) {
    const t = slots[i];
    if (t) outs.push(t);
    else (late ??= []).push(i);
  }
  const result = assemble(outs, busyMs);
  result.late = late;
  return result;
}
