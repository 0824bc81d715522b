// wire.ts - what travels between the main thread and a worker: one task
// carries many turns (of many connections) in ONE buffer; one result
// carries what each turn produced in one buffer.  Structured clone of
// objects costs microseconds per turn, so only the rare parts (hook infos,
// commands, failures) travel as objects, and only when present.  Both sides
// import this file: the layouts below are the single description.
//
//   task buffer, per turn in order (integers little-endian):
//     +0 f64 conn  +8 u8 kind  +9 u8 peer address length A  +10 u16 peer port
//     +12 u8 peer family  +13..15 0  +16 i32 stateLen  +20 u32 n  +24 f64 turn id   (TASK_TURN_HEADER = 32)
//     then A bytes of address (latin1), stateLen bytes of state, then n requests, each
//     +0 u32 frame length L  +4 f64 arrival  +12 L bytes of request frame   (TASK_REQUEST_HEADER = 12)
//     (arrival: when the main thread drained the frame from the ring, in ms on the
//     clock all threads share, uv_hrtime; timing.ts)
//   task.infos[i]: the ClosedInfo / TurnFailure of hook turn i (null: none; the whole array null when no turn has one)
//
//   result buffer, per turn in the task's order (turns in result.late left out; a LateResult has its own turns):
//     +0 f64 conn  +8 i32 stateLen  +12 u32 outLen                 (RESULT_TURN_HEADER = 16)
//     then stateLen bytes of state, outLen bytes of length-prefixed frames for the connection,
//     then the frames its commands push (commands name them by absolute offset)
//   result.extras[i]: commands, close and failures of turn i (null: none; the whole array null when none has any)
//   result.timing: a Map from action name to a Float64Array per action that ran in the task (B = TURN_TIME_BUCKETS = 18)
//     [0] requests  [1] run ms, total  [2] run ms, longest  [3] wait ms, total
//     [4 .. 4+B) requests per run time bucket  [4+B .. 4+2B) requests per wait time bucket   (ActionTiming)
//     run: the handler's run time (until its promise settled, for an async handler);
//     wait: from arrival until the handler started; buckets: TURN_TIME_BUCKETS_MS, not cumulative
//
// State bytes are msgpackr-packed (structuredClone mode); stateLen -1 means
// "no state yet" (task) or "no state" (result).
import type { PeerAddress } from '../options.js';
import type { ClosedInfo, TurnFailure } from './actor.js';
import { TURN_TIME_BUCKETS } from './timing.js';

export const TurnKind = Object.freeze({ REQUESTS: 0, CONNECTED: 1, CLOSED: 2, FAILED: 3 } as const);

export interface TurnSpec {
  conn: number;
  kind: number;
  peer: PeerAddress;
  stateLen: number;
  /** REQUESTS: how many request frames follow the state. */
  n: number;
  /** CLOSED: why; FAILED: what failed. */
  info: ClosedInfo | TurnFailure | null;
  /** The main thread's number for this turn (a late result names it). */
  turn: number;
}

export interface Task {
  count: number;
  buf: Uint8Array;
  infos: Array<ClosedInfo | TurnFailure | null> | null;
}

export const TASK_TURN_HEADER = 32;
export const TASK_REQUEST_HEADER = 12;
export const RESULT_TURN_HEADER = 16;

/** Commands a turn leaves for the main thread, applied in order after its output is sent. */
export const CmdOp = Object.freeze({ PUSH_TO: 0, PUSH_GROUP: 1, BROADCAST: 2, JOIN: 3, LEAVE: 4 } as const);
/** Push policies as they travel in commands (see PushPolicy); -1: the server's default. */
export const POLICY_CODES = Object.freeze({ queue: 0, 'drop-oldest': 1, 'drop-new': 2, close: 3, coalesce: 4 } as const);
export type Cmd =
  | [op: 0, targets: number[], off: number, len: number, policy: number, key: string | null]
  | [op: 1, group: string, off: number, len: number, except: number, policy: number, key: string | null]
  | [op: 2, off: number, len: number, except: number, policy: number, key: string | null]
  | [op: 3, group: string]
  | [op: 4, group: string];

export interface TurnExtras {
  cmds: Cmd[] | null;
  /** Close the connection after its output, with this reason. */
  close: string | null;
  /** Requests of this turn that failed (for the server's turnFailed event). */
  failures: TurnFailure[] | null;
}

export interface TaskResult {
  count: number;
  buf: Uint8Array;
  extras: Array<TurnExtras | null> | null;
  /** The worker's threadId. */
  thread: number;
  /** Per action run in this task: its ActionTiming record. */
  timing: Map<string, Float64Array>;
  /**
   * Milliseconds the task held its worker's thread: the synchronous run of
   * its turns (up to their first await) and the assembling of this result.
   * Time a turn spends awaiting is not counted: it holds no thread.
   */
  busyMs: number;
  /**
   * Indices (in the task's order) of turns that were still awaiting when
   * the task's synchronous run ended: they are not in `buf` (the others are,
   * in order), and each comes later in a LateResult.  null: none.
   */
  late: number[] | null;
}

/**
 * Turns that finished after their task had returned (they awaited), sent on
 * the worker's late port as they finish: laid out as a TaskResult (`late`
 * null); `conns` and `turns` name each turn's connection and turn id, in
 * order.  It may reach the main thread before its task's result does (two
 * ports, no order between them): the turn id says which turn it is.
 */
export interface LateResult extends TaskResult {
  conns: number[];
  turns: number[];
}

/** Offsets in a TaskResult.timing record (drawn above). */
export const ActionTiming = Object.freeze({
  REQUESTS: 0,
  RUN_SUM: 1,
  RUN_MAX: 2,
  WAIT_SUM: 3,
  RUN_COUNTS: 4,
  WAIT_COUNTS: 4 + TURN_TIME_BUCKETS,
  LENGTH: 4 + 2 * TURN_TIME_BUCKETS,
} as const);

/** Data every worker of a server starts with. */
export interface WorkerInit {
  actor: string;
  handlerTimeoutMs: number;
  codec: {
    maxBodyBytes: number;
    maxAttachmentBytes: number;
    maxDecompressedBytes: number;
    maxDepth: number;
    requireChecksum: boolean;
  };
}

/** The WorkerInit of a server whose actor module is at `actor`, with options `o`. */
export function workerInit(actor: string, o: Pick<WorkerInit, 'handlerTimeoutMs'> & WorkerInit['codec']): WorkerInit {
  return {
    actor,
    handlerTimeoutMs: o.handlerTimeoutMs,
    codec: {
      maxBodyBytes: o.maxBodyBytes,
      maxAttachmentBytes: o.maxAttachmentBytes,
      maxDecompressedBytes: o.maxDecompressedBytes,
      maxDepth: o.maxDepth,
      requireChecksum: o.requireChecksum,
    },
  };
}

/** The message a worker posts once, at start, to hand the main thread its end of the comlink channel. */
export const MAIN_PORT_KEY = 'whirlwind:mainPort';
/** The worker's handshake also carries the port its late turns' results come on, and its threadId. */
export const LATE_PORT_KEY = 'whirlwind:latePort';
export const THREAD_KEY = 'whirlwind:thread';
