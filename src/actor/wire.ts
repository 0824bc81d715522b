// wire.ts - what travels between the main thread and a worker: one task
// carries many turns (of many connections) and one buffer with their bytes;
// one result carries what each turn produced.  Both sides import this file,
// so the layouts below are the single description of that hand-off.
//
//   task buffer, per turn in order:   [state bytes: stateLen]  then n x ( u32 LE length | request frame )
//   result buffer, per turn in order: [state bytes: stateLen]  [out: outLen bytes of length-prefixed frames]
//                                     then the frames its commands push (referenced by offset)
//
// State bytes are msgpackr-packed (structuredClone mode); stateLen -1 means
// "no state yet" (task) or "no state" (result).
import type { PeerAddress } from '../options.js';
import type { ClosedInfo, TurnFailure } from './actor.js';

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
}

export interface Task {
  turns: TurnSpec[];
  buf: Uint8Array;
}

/** Commands a turn leaves for the main thread, applied in order after its output is sent. */
export const CmdOp = Object.freeze({ PUSH_TO: 0, PUSH_GROUP: 1, BROADCAST: 2, JOIN: 3, LEAVE: 4 } as const);
export type Cmd =
  | [op: 0, targets: number[], off: number, len: number]
  | [op: 1, group: string, off: number, len: number, except: number]
  | [op: 2, off: number, len: number, except: number]
  | [op: 3, group: string]
  | [op: 4, group: string];

export interface TurnResult {
  conn: number;
  stateLen: number;
  outLen: number;
  cmds: Cmd[] | null;
  /** Close the connection after its output, with this reason. */
  close: string | null;
  /** Requests of this turn that failed (for the server's turnFailed event). */
  failures: TurnFailure[] | null;
}

export interface TaskResult {
  turns: TurnResult[];
  buf: Uint8Array;
}

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

/** The message a worker posts once, at start, to hand the main thread its end of the comlink channel. */
export const MAIN_PORT_KEY = 'whirlwind:mainPort';
