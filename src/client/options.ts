// options.ts - the client's one frozen defaults object and option validation.
// docs/api.md ("TypeScript client") lists the same options and defaults; a test compares them.

import type { CompressOption } from '../protocol/encoder.js';
import { CODEC_DEFAULTS, checkBoolean, checkInteger, describe } from '../protocol/defaults.js';

/** Automatic reconnection with exponential backoff. */
export interface ReconnectOptions {
  /** Delay before the first attempt, in ms. */
  initialDelay?: number;
  /** Upper bound of the delay, in ms. */
  maxDelay?: number;
  /** Each failed attempt multiplies the delay by this factor. */
  factor?: number;
  /** Random spread of each delay: 0.2 means ±20 %. */
  jitter?: number;
  /** Give up after this many failed attempts in a row; 0 = never give up. */
  maxAttempts?: number;
}

/** Options of {@link connect}. */
export interface ClientOptions {
  /** Server host name or address. */
  host?: string;
  /** Server TCP port (required). */
  port: number;
  /** Give up connecting after this many ms. */
  connectTimeout?: number;
  /** Default timeout of each request and ping, in ms; 0 = none. */
  requestTimeout?: number;
  /** Default: append a CRC-32 trailer to every request. */
  checksum?: boolean;
  /** Default compression of requests: false, true (body and attachment), 'body' or 'attachment'. */
  compress?: CompressOption;
  /** DEFLATE level, 0..9. */
  compressionLevel?: number;
  /** Sections shorter than this many bytes are never compressed. */
  compressThreshold?: number;
  /** Disable Nagle's algorithm on the socket. */
  noDelay?: boolean;
  /** Reconnect after an unexpected disconnect: false (default), true (default backoff) or backoff settings. */
  reconnect?: boolean | ReconnectOptions;
  /** Largest frame accepted from the server; a larger one closes the connection. */
  maxFrameBytes?: number;
  /** Largest reply/push body accepted, after decompression. */
  maxBodyBytes?: number;
  /** Largest reply/push attachment accepted, after decompression. */
  maxAttachmentBytes?: number;
  /** Largest total a message may inflate to. */
  maxDecompressedBytes?: number;
  /** Deepest msgpack nesting accepted. */
  maxDepth?: number;
  /** Pushes an async iterator may hold before it fails with OVERLOADED (a reader that fell behind). */
  maxQueuedPushes?: number;
  /**
   * Heartbeat: after this many ms without a byte from the server, send a
   * PING; 0 = no heartbeat.  Finds half-open connections (a peer that
   * vanished behind NAT) that TCP alone notices only much later.
   */
  heartbeatInterval?: number;
  /** Heartbeat: close the connection when nothing at all arrives this many ms after a heartbeat PING. */
  heartbeatTimeout?: number;
}

/** Every client default, in one place. */
export const CLIENT_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  connectTimeout: 10_000,
  requestTimeout: 30_000,
  checksum: false,
  compress: false as CompressOption,
  compressionLevel: CODEC_DEFAULTS.compressionLevel,
  compressThreshold: CODEC_DEFAULTS.compressThreshold,
  noDelay: true,
  reconnect: false as boolean,
  maxFrameBytes: CODEC_DEFAULTS.maxFrameBytes,
  maxBodyBytes: CODEC_DEFAULTS.maxBodyBytes,
  maxAttachmentBytes: CODEC_DEFAULTS.maxAttachmentBytes,
  maxDecompressedBytes: CODEC_DEFAULTS.maxDecompressedBytes,
  maxDepth: CODEC_DEFAULTS.maxDepth,
  maxQueuedPushes: 10_000,
  heartbeatInterval: 30_000,
  heartbeatTimeout: 10_000,
  reconnectInitialDelay: 100,
  reconnectMaxDelay: 5_000,
  reconnectFactor: 2,
  reconnectJitter: 0.2,
  reconnectMaxAttempts: 0,
});

/** Validated options. */
export interface ResolvedClientOptions extends Required<Omit<ClientOptions, 'reconnect'>> {
  reconnect: Required<ReconnectOptions> | null;
}

const MAX = Number.MAX_SAFE_INTEGER;
export const MAX_TIMER = 2_147_483_647; // setTimeout's largest delay

function checkNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new TypeError(`options.${name} must be a number between ${min} and ${max}, got ${describe(value)}`);
  }
  return value;
}

/** Validates client options, filling defaults; every message names the option. */
/** The options connect() takes: CLIENT_DEFAULTS' keys less its flat reconnect* ones, plus port. */
const CLIENT_KEYS: ReadonlySet<string> = new Set(['port', ...Object.keys(CLIENT_DEFAULTS).filter((k) => !/^reconnect./.test(k))]);
const RECONNECT_KEYS: ReadonlySet<string> = new Set(['initialDelay', 'maxDelay', 'factor', 'jitter', 'maxAttempts']);

export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  for (const k of Object.keys(options)) {
    if (CLIENT_KEYS.has(k)) continue;
    const sub = /^reconnect(.)(.*)$/.exec(k);
    const hint = sub && RECONNECT_KEYS.has(sub[1]!.toLowerCase() + sub[2]!) ? ` (it goes in options.reconnect: { ${sub[1]!.toLowerCase() + sub[2]!}: ... })` : '';
    throw new TypeError(`options.${k} is not a client option${hint}`);
  }
  const d = CLIENT_DEFAULTS;
  const p = 'options';
  const host = options.host ?? d.host;
  if (typeof host !== 'string' || host.length === 0) throw new TypeError(`options.host must be a non-empty string, got ${describe(host)}`);
  const compress = options.compress ?? d.compress;
  if (compress !== true && compress !== false && compress !== 'body' && compress !== 'attachment') {
    throw new TypeError(`options.compress must be true, false, 'body' or 'attachment', got ${describe(compress)}`);
  }
  let reconnect: Required<ReconnectOptions> | null = null;
  const r = options.reconnect ?? d.reconnect;
  if (r !== false) {
    if (r !== true && (r === null || typeof r !== 'object')) {
      throw new TypeError(`options.reconnect must be a boolean or an object, got ${describe(r)}`);
    }
    const ro: ReconnectOptions = r === true ? {} : r;
    for (const k of Object.keys(ro)) {
      if (!RECONNECT_KEYS.has(k)) throw new TypeError(`options.reconnect.${k} is not a reconnect option (they are ${[...RECONNECT_KEYS].join(', ')})`);
    }
    reconnect = {
      initialDelay: checkInteger(p, 'reconnect.initialDelay', ro.initialDelay ?? d.reconnectInitialDelay, 0, MAX_TIMER),
      maxDelay: checkInteger(p, 'reconnect.maxDelay', ro.maxDelay ?? d.reconnectMaxDelay, 0, MAX_TIMER),
      factor: checkNumber('reconnect.factor', ro.factor ?? d.reconnectFactor, 1, 100),
      jitter: checkNumber('reconnect.jitter', ro.jitter ?? d.reconnectJitter, 0, 1),
      maxAttempts: checkInteger(p, 'reconnect.maxAttempts', ro.maxAttempts ?? d.reconnectMaxAttempts, 0, MAX),
    };
  }
  return {
    host,
    port: checkInteger(p, 'port', options.port, 1, 65535),
    connectTimeout: checkInteger(p, 'connectTimeout', options.connectTimeout ?? d.connectTimeout, 1, MAX_TIMER),
    requestTimeout: checkInteger(p, 'requestTimeout', options.requestTimeout ?? d.requestTimeout, 0, MAX_TIMER),
    checksum: checkBoolean(p, 'checksum', options.checksum ?? d.checksum),
    compress,
    compressionLevel: checkInteger(p, 'compressionLevel', options.compressionLevel ?? d.compressionLevel, 0, 9),
    compressThreshold: checkInteger(p, 'compressThreshold', options.compressThreshold ?? d.compressThreshold, 0, 0xffff_ffff),
    noDelay: checkBoolean(p, 'noDelay', options.noDelay ?? d.noDelay),
    reconnect,
    maxFrameBytes: checkInteger(p, 'maxFrameBytes', options.maxFrameBytes ?? d.maxFrameBytes, 28, 0xffff_ffff),
    maxBodyBytes: checkInteger(p, 'maxBodyBytes', options.maxBodyBytes ?? d.maxBodyBytes, 0, 0xffff_ffff),
    maxAttachmentBytes: checkInteger(p, 'maxAttachmentBytes', options.maxAttachmentBytes ?? d.maxAttachmentBytes, 0, 0xffff_ffff),
    maxDecompressedBytes: checkInteger(p, 'maxDecompressedBytes', options.maxDecompressedBytes ?? d.maxDecompressedBytes, 0, 2 * 0xffff_ffff),
    maxDepth: checkInteger(p, 'maxDepth', options.maxDepth ?? d.maxDepth, 1, 10_000),
    maxQueuedPushes: checkInteger(p, 'maxQueuedPushes', options.maxQueuedPushes ?? d.maxQueuedPushes, 1, MAX),
    heartbeatInterval: checkInteger(p, 'heartbeatInterval', options.heartbeatInterval ?? d.heartbeatInterval, 0, MAX_TIMER),
    heartbeatTimeout: checkInteger(p, 'heartbeatTimeout', options.heartbeatTimeout ?? d.heartbeatTimeout, 1, MAX_TIMER),
  };
}
