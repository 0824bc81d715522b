// defaults.ts - the codec's one frozen defaults object and the validation of
// codec options.  docs/protocol.md shows the same numbers; a test compares.

/** Limits and policies for decoding incoming messages. */
export interface DecoderOptions {
  /** Largest body, in bytes after decompression. */
  maxBodyBytes?: number;
  /** Largest attachment, in bytes after decompression. */
  maxAttachmentBytes?: number;
  /** Largest total a single message may inflate to (body + attachment, compressed sections only). */
  maxDecompressedBytes?: number;
  /** Deepest nesting of msgpack arrays and maps in a body. */
  maxDepth?: number;
  /** Reject messages without a CHECKSUM trailer (CHECKSUM_REQUIRED). */
  requireChecksum?: boolean;
  /**
   * Copy the attachment and msgpack `bin` values out of the frame.  Leave it
   * true when the frame's memory is reused after decoding (the native ring);
   * false is safe when each frame is a buffer of its own (node:net chunks).
   */
  copyBuffers?: boolean;
}

/** Policies for encoding outgoing messages. */
export interface EncoderOptions {
  /** zlib level for DEFLATE, 0..9 (1 = fastest). */
  compressionLevel?: number;
  /** Sections shorter than this are never compressed, even when asked. */
  compressThreshold?: number;
}

/** Largest frame the transport accepts (its `maxFrameBytes` default). */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** Every codec default, in one place. */
export const CODEC_DEFAULTS = Object.freeze({
  maxBodyBytes: 4 * 1024 * 1024,
  maxAttachmentBytes: 16 * 1024 * 1024,
  maxDecompressedBytes: 16 * 1024 * 1024,
  maxDepth: 64,
  requireChecksum: false,
  copyBuffers: true,
  compressionLevel: 1,
  compressThreshold: 256,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
});

/** Resolved decoder options. */
export type ResolvedDecoderOptions = Required<DecoderOptions>;
/** Resolved encoder options. */
export type ResolvedEncoderOptions = Required<EncoderOptions>;

/** Throws a TypeError naming `options.<name>` unless `value` is an integer in [min, max]. */
export function checkInteger(prefix: string, name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`;
    throw new TypeError(`${prefix}.${name} must be an integer ${range}, got ${describe(value)}`);
  }
  return value;
}

/** Throws a TypeError naming `options.<name>` unless `value` is a boolean. */
export function checkBoolean(prefix: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${prefix}.${name} must be a boolean, got ${describe(value)}`);
  return value;
}

/** A short description of a bad option value for error messages. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  return typeof value;
}

const U32 = 0xffff_ffff;

/** Validates decoder options, filling defaults; messages name the option. */
export function resolveDecoderOptions(options: DecoderOptions = {}, prefix = 'options'): ResolvedDecoderOptions {
  if (options === null || typeof options !== 'object') throw new TypeError(`${prefix} must be an object`);
  const d = CODEC_DEFAULTS;
  return {
    maxBodyBytes: checkInteger(prefix, 'maxBodyBytes', options.maxBodyBytes ?? d.maxBodyBytes, 0, U32),
    maxAttachmentBytes: checkInteger(prefix, 'maxAttachmentBytes', options.maxAttachmentBytes ?? d.maxAttachmentBytes, 0, U32),
    maxDecompressedBytes: checkInteger(
      prefix,
      'maxDecompressedBytes',
      options.maxDecompressedBytes ?? d.maxDecompressedBytes,
      0,
      2 * U32,
    ),
    maxDepth: checkInteger(prefix, 'maxDepth', options.maxDepth ?? d.maxDepth, 1, 10_000),
    requireChecksum: checkBoolean(prefix, 'requireChecksum', options.requireChecksum ?? d.requireChecksum),
    copyBuffers: checkBoolean(prefix, 'copyBuffers', options.copyBuffers ?? d.copyBuffers),
  };
}

/** Validates encoder options, filling defaults; messages name the option. */
export function resolveEncoderOptions(options: EncoderOptions = {}, prefix = 'options'): ResolvedEncoderOptions {
  if (options === null || typeof options !== 'object') throw new TypeError(`${prefix} must be an object`);
  const d = CODEC_DEFAULTS;
  return {
    compressionLevel: checkInteger(prefix, 'compressionLevel', options.compressionLevel ?? d.compressionLevel, 0, 9),
    compressThreshold: checkInteger(prefix, 'compressThreshold', options.compressThreshold ?? d.compressThreshold, 0, U32),
  };
}
