// options.ts - the socket-actor server's options: one frozen defaults object
// (ACTOR_DEFAULTS), one validator.  Engine options pass through to the engine
// and are validated there.  docs/api.md lists the same defaults;
// test/api-docs-defaults.test.ts compares the two.
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CODEC_DEFAULTS } from '../protocol/defaults.js';
import { OptionError } from '../errors.js';
import { ENGINE_DEFAULTS, type EngineOptions, intOption as int } from '../options.js';
import { PUSH_POLICIES, type PushPolicy } from './actor.js';

/** V8 heap limits of each worker (worker_threads `resourceLimits`). */
export interface WorkerResourceLimits {
  maxOldGenerationSizeMb?: number;
  maxYoungGenerationSizeMb?: number;
  codeRangeSizeMb?: number;
  stackSizeMb?: number;
}

/** Options of {@link createServer} / {@link listen}: the actor layer's own, the codec's limits, and every engine option. */
export interface ActorServerOptions extends Omit<EngineOptions, 'protocolCheck'> {
  /** The actor module: a path or file: URL of an ES module whose default export (or export `actor`) is a SocketActor subclass. */
  actor: string | URL;
  /** Worker threads kept alive even when idle. */
  minWorkers?: number;
  /** Worker threads at most. */
  maxWorkers?: number;
  /** An idle worker above minWorkers is stopped after this many ms (never 0: that thrashes workers). */
  workerIdleTimeoutMs?: number;
  /** Requests waiting for a worker, over all connections, at most; above it a request is answered ERROR OVERLOADED in its place. 0: no limit. */
  maxQueue?: number;
  /** Requests queued for one connection (waiting or running) at which the engine stops reading it; reading resumes at half. */
  mailboxLimit?: number;
  /** A handler running longer is answered ERROR TIMEOUT and its late result discarded; 0: no timeout. */
  handlerTimeoutMs?: number;
  /** Queued requests of one connection that may run, in order, inside one worker task. */
  maxTurnsPerConnection?: number;
  /** Turns (of all connections) in one worker task at most. */
  maxTurnsPerTask?: number;
  /** Heap limits of each worker; a worker that exceeds them dies and is replaced. null: Node's defaults. */
  resourceLimits?: WorkerResourceLimits | null;
  /** Largest request body after decompression. */
  maxBodyBytes?: number;
  /** Largest request attachment after decompression. */
  maxAttachmentBytes?: number;
  /** Largest total a request may inflate to. */
  maxDecompressedBytes?: number;
  /** Deepest msgpack nesting in a request body. */
  maxDepth?: number;
  /** Answer CHECKSUM_REQUIRED to requests without a CRC-32 trailer (and checksum every answer). */
  requireChecksum?: boolean;
  /** Send a PING to each connection this often (ms); 0: no heartbeats. */
  heartbeatIntervalMs?: number;
  /** A connection that sent nothing (no PONG, no request) for this long after a PING gets GOAWAY and is closed. */
  heartbeatTimeoutMs?: number;
  /** Bytes of pushes held for one slow consumer at most (see PushPolicy). */
  outboundBudgetBytes?: number;
  /** The policy of a push that names none. */
  defaultPushPolicy?: PushPolicy;
}

export type ResolvedActorOptions = Required<Omit<ActorServerOptions, keyof EngineOptions | 'actor'>>;

/** Every actor-layer default, in one place. */
export const ACTOR_DEFAULTS: Readonly<ResolvedActorOptions> = Object.freeze({
  minWorkers: 1,
  maxWorkers: defaultMaxWorkers(),
  workerIdleTimeoutMs: 60_000,
  maxQueue: 100_000,
  mailboxLimit: 64,
  handlerTimeoutMs: 10_000,
  maxTurnsPerConnection: 32,
  maxTurnsPerTask: 256,
  resourceLimits: null,
  maxBodyBytes: CODEC_DEFAULTS.maxBodyBytes,
  maxAttachmentBytes: CODEC_DEFAULTS.maxAttachmentBytes,
  maxDecompressedBytes: CODEC_DEFAULTS.maxDecompressedBytes,
  maxDepth: CODEC_DEFAULTS.maxDepth,
  requireChecksum: CODEC_DEFAULTS.requireChecksum,
  heartbeatIntervalMs: 0,
  heartbeatTimeoutMs: 10_000,
  outboundBudgetBytes: 1024 * 1024,
  defaultPushPolicy: 'queue' as PushPolicy,
});

/** One worker per core, at least 1. */
export function defaultMaxWorkers(): number {
  return Math.max(1, availableParallelism());
}

/** Splits options into the actor layer's (validated, defaults filled), the engine's, and the module. */
export function resolveActorOptions(options: ActorServerOptions): {
  actor: URL;
  actorOptions: ResolvedActorOptions;
  engineOptions: EngineOptions;
} {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const engineKeys = new Set(Object.keys(ENGINE_DEFAULTS));
  const actorKeys = new Set(Object.keys(ACTOR_DEFAULTS));
  const engineOptions: Record<string, unknown> = {};
  const o = { ...ACTOR_DEFAULTS } as Record<string, unknown>;
  let actor: URL | undefined;
  for (const [k, v] of Object.entries(options)) {
    if (k === 'actor') continue;
    if (k === 'protocolCheck') throw new OptionError(k, 'is always on for an actor server');
    if (engineKeys.has(k)) engineOptions[k] = v;
    else if (actorKeys.has(k)) {
      if (v !== undefined) o[k] = v;
    } else throw new OptionError(k, 'is not an option of an actor server');
  }
  const a = options.actor;
  if (a instanceof URL) actor = a;
  else if (typeof a === 'string' && a.length > 0) {
    actor = a.startsWith('file:') ? new URL(a) : pathToFileURL(resolvePath(a));
  } else throw new OptionError('actor', 'must be a path or URL of the actor module');
  const r = o as unknown as ResolvedActorOptions;
  int('minWorkers', r.minWorkers, 0, 1024);
  int('maxWorkers', r.maxWorkers, 1, 1024);
  if (r.minWorkers > r.maxWorkers) throw new OptionError('minWorkers', `must not exceed maxWorkers (${r.maxWorkers})`);
  int('workerIdleTimeoutMs', r.workerIdleTimeoutMs, 1, 0x7fff_ffff);
  int('maxQueue', r.maxQueue, 0, 0xffff_ffff);
  int('mailboxLimit', r.mailboxLimit, 1, 0xffff_ffff);
  int('handlerTimeoutMs', r.handlerTimeoutMs, 0, 0x7fff_ffff);
  int('maxTurnsPerConnection', r.maxTurnsPerConnection, 1, 65536);
  int('maxTurnsPerTask', r.maxTurnsPerTask, 1, 65536);
  if (r.resourceLimits !== null && (typeof r.resourceLimits !== 'object' || Array.isArray(r.resourceLimits))) {
    throw new OptionError('resourceLimits', 'must be an object ({ maxOldGenerationSizeMb, ... }) or null');
  }
  if (r.resourceLimits) {
    for (const [k, v] of Object.entries(r.resourceLimits)) {
      if (!['maxOldGenerationSizeMb', 'maxYoungGenerationSizeMb', 'codeRangeSizeMb', 'stackSizeMb'].includes(k)) {
        throw new OptionError(`resourceLimits.${k}`, 'is not a worker resource limit');
      }
      if (typeof v !== 'number' || !(v > 0)) throw new OptionError(`resourceLimits.${k}`, `must be a positive number (got ${String(v)})`);
    }
  }
  int('maxBodyBytes', r.maxBodyBytes, 0, 0xffff_ffff);
  int('maxAttachmentBytes', r.maxAttachmentBytes, 0, 0xffff_ffff);
  int('maxDecompressedBytes', r.maxDecompressedBytes, 0, 2 * 0xffff_ffff);
  int('maxDepth', r.maxDepth, 1, 10_000);
  if (typeof r.requireChecksum !== 'boolean') throw new OptionError('requireChecksum', 'must be a boolean');
  int('heartbeatIntervalMs', r.heartbeatIntervalMs, 0, 0x7fff_ffff);
  int('heartbeatTimeoutMs', r.heartbeatTimeoutMs, 1, 0x7fff_ffff);
  int('outboundBudgetBytes', r.outboundBudgetBytes, 0, 0xffff_ffff);
  if (!PUSH_POLICIES.includes(r.defaultPushPolicy) || r.defaultPushPolicy === 'coalesce') {
    throw new OptionError('defaultPushPolicy', `must be one of queue, drop-oldest, drop-new, close (got ${String(r.defaultPushPolicy)})`);
  }
  const mf = engineOptions.maxFrameBytes;
  if (typeof mf === 'number' && Number.isInteger(mf) && mf < 28) {
    // (The engine checks the rest of it.)
    throw new OptionError('maxFrameBytes', `must be at least 28 for an actor server: every protocol message has a 28-byte header (got ${mf})`);
  }
  return { actor, actorOptions: r, engineOptions: engineOptions as EngineOptions };
}
