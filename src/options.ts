// options.ts - engine options: one frozen defaults object, one validator.
// docs/api.md lists the same defaults; test/api-docs-defaults.test.ts checks.
import { availableParallelism } from 'node:os';
import { OptionError } from './errors.js';
import { describe } from './protocol/defaults.js';
import { LAYOUT } from './layout.js';

export type BackendName = 'epoll' | 'io_uring' | 'iocp';

/** The peer of a connection. */
export interface PeerAddress {
  address: string;
  port: number;
  family: 4 | 6;
}

/** Decides whether to admit a new connection; a Promise may take up to acceptHookTimeoutMs. */
export type AcceptHook = (peer: PeerAddress) => boolean | Promise<boolean>;
export const BACKENDS: readonly BackendName[] = Object.freeze(['io_uring', 'epoll', 'iocp'] as const);

export interface EngineOptions {
  /** Address to listen on (a numeric IPv4/IPv6 address or a host name). */
  host?: string;
  /** Port to listen on; 0 picks a free port (see `server.port`). */
  port?: number;
  /** For an IPv6 host, refuse IPv4-mapped connections. */
  ipv6Only?: boolean;
  /** `auto` or a backend name; `auto` honours WHIRLWIND_BACKEND, then picks the best available. */
  backend?: 'auto' | BackendName;
  /** Native I/O threads. */
  ioThreads?: number;
  /** Bytes of each I/O thread's ring into JS (a power of two). */
  ringBytes?: number;
  /** Largest frame payload accepted; a larger length closes that connection. */
  maxFrameBytes?: number;
  /** Pending send bytes above which a connection owes a `drain` event. */
  sendHighWaterBytes?: number;
  /** Pending send bytes at or below which the `drain` event fires. */
  sendLowWaterBytes?: number;
  /** Size of each receive buffer of an I/O thread. */
  recvBufferBytes?: number;
  /** Receive buffers per I/O thread. */
  recvBufferCount?: number;
  /** listen() backlog (the kernel caps it at net.core.somaxconn). */
  backlog?: number;
  /**
   * Check every frame as a whirlwind protocol message on the I/O thread
   * (header sanity and CRC-32, docs/protocol.md) and pass the verdict to
   * `frame(conn, data, check)`.
   */
  protocolCheck?: boolean;
  /** Open connections at most (0: no limit); more are refused. */
  maxConnections?: number;
  /** Open connections from one peer address at most (0: no limit). */
  maxConnectionsPerAddress?: number;
  /** Bytes (whole frames) written to a refused connection before it is closed. */
  refuseFrame?: Uint8Array | null;
  /** Close a connection after this long with nothing received or sent (0: never). */
  idleTimeoutMs?: number;
  /** Bytes (whole frames) written to an idle connection before it is closed. */
  idleFrame?: Uint8Array | null;
  /** How long a flushed close may wait, with no write done, for a peer that reads nothing (0: for ever). */
  flushTimeoutMs?: number;
  /** Bytes (whole frames) written to a connection that announced a frame over maxFrameBytes, before it is closed. */
  tooLargeFrame?: Uint8Array | null;
  /** TCP keep-alive: first probe after this much silence (0: off). */
  keepAliveMs?: number;
  /** Decides, by peer address, whether a new connection is admitted (null: all are). */
  acceptHook?: AcceptHook | null;
  /** An accept hook's Promise that takes longer refuses the connection. */
  acceptHookTimeoutMs?: number;
}

export type ResolvedEngineOptions = Required<EngineOptions>;

export const ENGINE_DEFAULTS: Readonly<ResolvedEngineOptions> = Object.freeze({
  host: '127.0.0.1',
  port: 0,
  ipv6Only: false,
  backend: 'auto',
  ioThreads: defaultIoThreads(),
  ringBytes: 4 * 1024 * 1024,
  maxFrameBytes: 16 * 1024 * 1024,
  sendHighWaterBytes: 1024 * 1024,
  sendLowWaterBytes: 64 * 1024,
  recvBufferBytes: 64 * 1024,
  recvBufferCount: 32,
  backlog: 4096,
  protocolCheck: false,
  maxConnections: 0,
  maxConnectionsPerAddress: 0,
  refuseFrame: null,
  idleTimeoutMs: 0,
  idleFrame: null,
  flushTimeoutMs: 30_000,
  tooLargeFrame: null,
  keepAliveMs: 0,
  acceptHook: null,
  acceptHookTimeoutMs: 1000,
});

/** Half the cores, at least 1 and at most 4: the other half runs JavaScript. */
export function defaultIoThreads(): number {
  return Math.max(1, Math.min(4, Math.floor(availableParallelism() / 2)));
}

/** An integer option in [min, max], else an OptionError naming it (a string value is shown quoted: got "7000"). */
export function intOption(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new OptionError(name, `must be an integer from ${min} to ${max} (got ${describe(v)})`);
  }
  return v;
}
const int = intOption;

export function resolveEngineOptions(options: EngineOptions = {}): ResolvedEngineOptions {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('options must be an object');
  }
  const known = new Set(Object.keys(ENGINE_DEFAULTS));
  for (const k of Object.keys(options)) {
    if (!known.has(k)) throw new OptionError(k, 'is not an engine option');
  }
  const o = { ...ENGINE_DEFAULTS } as ResolvedEngineOptions;
  for (const [k, v] of Object.entries(options)) {
    if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  }
  if (typeof o.host !== 'string' || o.host.length === 0) {
    throw new OptionError('host', `must be a non-empty string (got ${String(o.host)})`);
  }
  int('port', o.port, 0, 65535);
  if (typeof o.ipv6Only !== 'boolean') throw new OptionError('ipv6Only', 'must be a boolean');
  if (o.backend !== 'auto' && !BACKENDS.includes(o.backend as BackendName)) {
    throw new OptionError('backend', `must be one of auto, ${BACKENDS.join(', ')} (got ${String(o.backend)})`);
  }
  int('ioThreads', o.ioThreads, 1, LAYOUT.maxIoThreads);
  int('ringBytes', o.ringBytes, LAYOUT.minRingBytes, LAYOUT.maxRingBytes);
  if ((o.ringBytes & (o.ringBytes - 1)) !== 0) {
    throw new OptionError('ringBytes', `must be a power of two (got ${o.ringBytes})`);
  }
  int('maxFrameBytes', o.maxFrameBytes, 0, 0xffff_fff0);
  int('sendHighWaterBytes', o.sendHighWaterBytes, 0, 0xffff_ffff);
  int('sendLowWaterBytes', o.sendLowWaterBytes, 0, 0xffff_ffff);
  if (o.sendLowWaterBytes > o.sendHighWaterBytes) {
    // Blame the one the caller set: with only the high mark given, the low
    // one is the default, which the caller may not know.
    if (options.sendLowWaterBytes === undefined) {
      throw new OptionError(
        'sendHighWaterBytes',
        `must not be below sendLowWaterBytes (${o.sendLowWaterBytes}, its default; got ${o.sendHighWaterBytes}): set sendLowWaterBytes too`,
      );
    }
    const high = options.sendHighWaterBytes === undefined ? `${o.sendHighWaterBytes}, its default` : String(o.sendHighWaterBytes);
    throw new OptionError('sendLowWaterBytes', `must not exceed sendHighWaterBytes (${high}; got ${o.sendLowWaterBytes})`);
  }
  int('recvBufferBytes', o.recvBufferBytes, 256, 16 * 1024 * 1024);
  int('recvBufferCount', o.recvBufferCount, 1, 65535);
  int('backlog', o.backlog, 1, 65535);
  if (typeof o.protocolCheck !== 'boolean') throw new OptionError('protocolCheck', 'must be a boolean');
  int('maxConnections', o.maxConnections, 0, 0xffff_ffff);
  int('maxConnectionsPerAddress', o.maxConnectionsPerAddress, 0, 0xffff_ffff);
  int('idleTimeoutMs', o.idleTimeoutMs, 0, 0x7fff_ffff);
  int('flushTimeoutMs', o.flushTimeoutMs, 0, 0x7fff_ffff);
  int('keepAliveMs', o.keepAliveMs, 0, 0x7fff_ffff);
  if (o.acceptHook !== null && typeof o.acceptHook !== 'function') throw new OptionError('acceptHook', 'must be a function or null');
  int('acceptHookTimeoutMs', o.acceptHookTimeoutMs, 1, 0x7fff_ffff);
  for (const k of ['refuseFrame', 'idleFrame', 'tooLargeFrame'] as const) {
    const v = o[k];
    if (v !== null && !(v instanceof Uint8Array)) throw new OptionError(k, 'must be a Uint8Array or null');
    if (v && v.length > 65536) throw new OptionError(k, `must be at most 65536 bytes (got ${v.length})`);
  }
  return o;
}
