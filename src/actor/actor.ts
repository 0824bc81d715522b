// actor.ts - what a user writes: a SocketActor subclass with a handler table,
// and the context each handler gets.  This file is imported by the main
// thread (to learn which hooks an actor has) and by every worker (to run
// turns), so it holds types and tiny helpers only.
import type { PeerAddress } from '../options.js';
import type { SendOptions } from '../protocol/encoder.js';

/** Queries and commands answered by the main thread (through comlink; every call is async). */
export interface MainThreadApi {
  /** Connections open now. */
  onlineCount(): Promise<number>;
  /** Whether the connection is open. */
  isConnected(conn: number): Promise<boolean>;
  /** The connection's peer, or null when it is not open. */
  peer(conn: number): Promise<PeerAddress | null>;
  /** Tokens of the open connections (in no particular order). */
  connections(): Promise<number[]>;
  /** Members of a group now. */
  groupMembers(group: string): Promise<number[]>;
  /**
   * Closes a connection now: GOAWAY (code 0, `reason` as its message) after
   * what is already queued to it, then the close.  Resolves false when it was
   * not open.
   */
  close(conn: number, reason?: string): Promise<boolean>;
}

/**
 * What happens to a push addressed to a slow consumer: a connection whose
 * unsent bytes passed the engine's sendHighWaterBytes (until its drain).
 * - `queue`: hold it (bounded by outboundBudgetBytes; past that the connection is closed);
 * - `drop-oldest`: hold it, dropping the oldest held pushes to stay within the budget;
 * - `drop-new`: drop it;
 * - `close`: close the connection (GOAWAY OVERLOADED "slow consumer");
 * - `coalesce`: replace a held push with the same `coalesceKey` (a slow client gets the latest state, not a backlog).
 */
export type PushPolicy = 'queue' | 'drop-oldest' | 'drop-new' | 'close' | 'coalesce';
export const PUSH_POLICIES: readonly PushPolicy[] = Object.freeze(['queue', 'drop-oldest', 'drop-new', 'close', 'coalesce'] as const);

/** Options of a push to other connections. */
export interface PushOptions extends SendOptions {
  /** Group and broadcast pushes: leave out the connection whose turn this is. */
  exceptSelf?: boolean;
  /** What to do when the receiver is a slow consumer (default: the server's defaultPushPolicy). */
  policy?: PushPolicy;
  /** With policy 'coalesce': pushes with the same key replace each other while held. */
  coalesceKey?: string;
}

/** Why a connection closed, as an onClosed hook sees it. */
export interface ClosedInfo {
  /** The engine's close reason ('peer', 'error', 'local-flushed', 'server-closing', 'idle', ...). */
  reason: string;
  /** The reason given to close(conn, reason), or the engine's explanation. */
  message: string;
}

/** A turn that failed, as an onTurnFailed hook and the server's `turnFailed` event see it. */
export interface TurnFailure {
  conn: number;
  /** The request id (0 for hook turns). */
  requestId: number;
  /** The action ('' when unknown, e.g. when the worker died before decoding). */
  action: string;
  /** The protocol error code the client was answered with (HANDLER_ERROR, TIMEOUT, INTERNAL, ...). */
  code: number;
  message: string;
}

/**
 * What a handler (and a hook) can do.  Everything it queues leaves after the
 * turn's reply: pushes to this connection in the order queued, pushes to other
 * connections enter their mailboxes when the turn's result reaches the main
 * thread.
 */
export interface TurnContext {
  /** This connection's token. */
  readonly conn: number;
  /** This connection's peer. */
  readonly peer: PeerAddress;
  /** The request's action ('' in hooks). */
  readonly action: string;
  /** The request's id (0 in hooks). */
  readonly requestId: number;
  /** The request's attachment (empty when none). */
  readonly attachment: Buffer;
  /** Main-thread queries and commands. */
  readonly main: MainThreadApi;
  /** Reply now with `body` (the handler's return value is then ignored). */
  reply(body?: unknown, options?: SendOptions): void;
  /** Answer with an ERROR (an application code 10000..65535, or a protocol code). */
  error(code: number, message: string, data?: unknown): void;
  /** Push to this connection. */
  push(topic: string, body?: unknown, options?: SendOptions): void;
  /** Push to one connection or a list of them. */
  pushTo(conns: number | readonly number[], topic: string, body?: unknown, options?: PushOptions): void;
  /** Push to every member of a group. */
  pushToGroup(group: string, topic: string, body?: unknown, options?: PushOptions): void;
  /** Push to every open connection. */
  broadcast(topic: string, body?: unknown, options?: PushOptions): void;
  /** Make this connection a member of a group (applied when the turn ends; left automatically on close). */
  join(group: string): void;
  /** Leave a group. */
  leave(group: string): void;
  /** Close this connection after this turn's reply: GOAWAY (code 0, `reason`) then close. */
  close(reason?: string): void;
}

/** A handler: `this` is the actor; returns the reply body (or a Promise of it). */
export type Handler<A, B = any> = (this: A, body: B, ctx: TurnContext) => unknown;

/** A table of handlers by action name. */
export type HandlerTable<A> = { readonly [action: string]: Handler<A> };

/**
 * Types a handler table for actor class `A`: inside each handler `this` is
 * the actor (so `this.state` is typed) and `ctx` is the {@link TurnContext}.
 *
 * ```ts
 * class Chat extends SocketActor<{ name: string | null }> {
 *   static handlers = handlers<Chat>({
 *     login(body: { name: string }) { this.state.name = body.name; return { ok: true }; },
 *   });
 * }
 * ```
 */
export function handlers<A>(table: { [action: string]: Handler<A> } & ThisType<A>): HandlerTable<A> {
  return Object.freeze({ ...table });
}

/**
 * Whether a handler may answer with this ERROR code: an application's
 * (10000-65535) or one of the protocol's (1-999).  Never 0, never an
 * implementation's local code (1000-1999, protocol.md §11), nothing else.
 */
export function isSendableCode(code: unknown): code is number {
  return typeof code === 'number' && Number.isInteger(code) && ((code >= 1 && code <= 999) || (code >= 10000 && code <= 65535));
}

/** A value as an error message shows it: strings quoted, objects by kind. */
export function shown(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : v === null ? 'null' : Array.isArray(v) ? 'an array with a non-token in it' : typeof v === 'object' ? 'an object' : String(v);
}

/** A group is named by a non-empty string (String(undefined) would make a group "undefined"). */
export function checkGroup(method: string, group: unknown): asserts group is string {
  if (typeof group !== 'string' || group.length === 0) throw new TypeError(`${method}(): the group must be a non-empty string, got ${shown(group)}`);
}

/** The RangeError for a code a handler may not send. */
export function codeError(what: string, code: unknown): RangeError {
  return new RangeError(`${what}: the code must be an integer from 10000 to 65535 (an application's) or from 1 to 999 (the protocol's), got ${shown(code)}`);
}

/** Thrown by a handler to answer with a specific ERROR code instead of HANDLER_ERROR. */
export class ReplyError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    if (!isSendableCode(code)) throw codeError('new ReplyError()', code);
    super(message);
    this.name = 'ReplyError';
    this.code = code;
    this.data = data;
  }
}

/**
 * The base class of socket actors.  One actor per connection; its `state`
 * persists across turns (shipped to whichever worker runs the next turn and
 * back, packed with msgpackr), so keep it to data: plain objects, arrays,
 * Maps, Sets, Dates, typed arrays.  Functions, class instances' prototypes and
 * resources (sockets, timers) do not survive a turn.
 *
 * Subclasses set `static handlers` (see {@link handlers}) and may define
 * `initialState()`, `onConnected(ctx)`, `onClosed(info, ctx)` and
 * `onTurnFailed(failure, ctx)`.
 */
export class SocketActor<State = unknown> {
  /** The actor's state for this connection. */
  state!: State;
  /** This connection's token (also ctx.conn). */
  conn = 0;

  /** Handlers by action name. */
  static handlers: HandlerTable<any> = Object.freeze({});

  /** The state of a new connection (called in a worker before its first turn). */
  initialState(): State {
    return undefined as State;
  }

  /** Called as the first turn of a connection (declare it only if needed: it costs a worker round trip). */
  onConnected?(ctx: TurnContext): unknown;
  /** Called as the last turn of a connection, after it closed (pushes to others still work). */
  onClosed?(info: ClosedInfo, ctx: TurnContext): unknown;
  /** Called after a turn failed (handler threw, timed out, or its worker died), with the state as that turn left it (or as it was before, for a dead worker). */
  onTurnFailed?(failure: TurnFailure, ctx: TurnContext): unknown;
}

/** What the main thread learns about an actor class. */
export interface ActorShape {
  hasConnected: boolean;
  hasClosed: boolean;
  hasTurnFailed: boolean;
  actions: string[];
}

/** Finds the actor class in a loaded module: the default export, or the export named `actor`. */
export function actorClassOf(mod: Record<string, unknown>, where: string): typeof SocketActor {
  const c = (mod.default ?? mod.actor) as unknown;
  if (typeof c !== 'function' || typeof (c as { prototype?: unknown }).prototype !== 'object') {
    throw new TypeError(`actor module ${where} must export a SocketActor subclass as default (or as "actor")`);
  }
  // Not instanceof: the module may import whirlwind from another copy of the package.
  if (typeof (c as { prototype: { initialState?: unknown } }).prototype.initialState !== 'function') {
    throw new TypeError(`actor class in ${where} must extend SocketActor (it has no initialState())`);
  }
  const h = (c as { handlers?: unknown }).handlers;
  if (h === null || typeof h !== 'object') throw new TypeError(`actor class in ${where} needs a static handlers table`);
  for (const [k, v] of Object.entries(h)) {
    if (typeof v !== 'function') throw new TypeError(`actor class in ${where}: handlers.${k} is not a function`);
  }
  return c as typeof SocketActor;
}

export function shapeOf(c: typeof SocketActor): ActorShape {
  const p = c.prototype as SocketActor;
  return {
    hasConnected: typeof p.onConnected === 'function',
    hasClosed: typeof p.onClosed === 'function',
    hasTurnFailed: typeof p.onTurnFailed === 'function',
    actions: Object.keys(c.handlers),
  };
}
