// errors.ts - the numbered error codes of the protocol and the one error
// class every codec and client failure is reported with.
//
// Codes 1..999 may travel on the wire (the `code` field of ERROR and GOAWAY
// messages).  Codes 1000..1999 are local: this implementation reports them but
// never sends them.  Codes 10000..65535 are free for applications.  The table
// is repeated, with the action a receiver takes, in docs/protocol.md.

/** Protocol error codes (u16). */
export const ErrorCode = Object.freeze({
  /** GOAWAY only: a normal close, nothing went wrong. */
  NONE: 0,
  /** The message is malformed: lengths disagree, reserved bits set, invalid msgpack, invalid DEFLATE data... */
  BAD_MESSAGE: 1,
  /** The first byte is not the magic 0x57: the peer does not speak this protocol. Fatal. */
  BAD_MAGIC: 2,
  /** The version byte names a version this peer does not speak. Fatal. */
  UNKNOWN_VERSION: 3,
  /** The kind byte is not a kind of this version. */
  UNKNOWN_KIND: 4,
  /** A kind that this peer never accepts in this direction (e.g. a REPLY sent to a server). */
  UNEXPECTED_KIND: 5,
  /** The CRC-32 trailer does not match the message. */
  BAD_CHECKSUM: 6,
  /** The receiver requires checksums and the message carries none. */
  CHECKSUM_REQUIRED: 7,
  /** The body (after decompression) is larger than the receiver's maxBodyBytes. */
  BODY_TOO_LARGE: 8,
  /** The attachment (after decompression) is larger than the receiver's maxAttachmentBytes. */
  ATTACHMENT_TOO_LARGE: 9,
  /** The message would decompress to more than the receiver's maxDecompressedBytes. */
  DECOMPRESSED_TOO_LARGE: 10,
  /** No handler is registered for the request's action. */
  UNKNOWN_ACTION: 11,
  /** The handler threw or rejected; the ERROR body's message says what it reported. */
  HANDLER_ERROR: 12,
  /** The request did not finish in time (server-side deadline, or locally: the client's timeout). */
  TIMEOUT: 13,
  /** The server refuses work for now; retrying later may succeed. */
  OVERLOADED: 14,
  /** The server is shutting down; reconnect elsewhere or later. */
  SHUTTING_DOWN: 15,
  /** An unexpected failure inside the receiver. */
  INTERNAL: 16,
  /** A frame's length prefix is above maxFrameBytes: the framing is broken. Fatal. */
  FRAME_TOO_LARGE: 17,

  /** Local: the bytes end before the frame or message does; more bytes may complete it. */
  INCOMPLETE: 1000,
  /** Local: the connection closed (or was lost) before the answer arrived. */
  CONNECTION_CLOSED: 1001,
  /** Local: the request was aborted through its AbortSignal. */
  ABORTED: 1002,
  /** Local: the client is not connected (closed, or between reconnect attempts). */
  NOT_CONNECTED: 1003,
} as const);
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const CODE_NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

/** The name of a code (`'BAD_CHECKSUM'`), or `'APPLICATION(n)'` / `'UNKNOWN(n)'`. */
export function errorCodeName(code: number): string {
  const name = CODE_NAMES.get(code);
  if (name !== undefined) return name;
  return code >= 10000 && code <= 0xffff ? `APPLICATION(${code})` : `UNKNOWN(${code})`;
}

/** Codes after which the connection cannot continue: the receiver sends GOAWAY and closes. */
export function isFatalCode(code: number): boolean {
  return code === ErrorCode.BAD_MAGIC || code === ErrorCode.UNKNOWN_VERSION || code === ErrorCode.FRAME_TOO_LARGE;
}

/** Extra facts attached to a ProtocolError. */
export interface ProtocolErrorInit {
  /** The request id the problem concerns: the id of a REQUEST, REPLY or ERROR message (0 when none or unreadable). */
  requestId?: number;
  /** The kind byte of the offending message, when it could be read (else 0). */
  kind?: number;
  /** True when the error came from the peer (an ERROR or GOAWAY message). */
  remote?: boolean;
  /** The `data` field of a remote error body, if any. */
  data?: unknown;
  /** For INCOMPLETE: how many bytes in total the frame needs. */
  needed?: number;
  /** The underlying exception, if any. */
  cause?: unknown;
}

/**
 * The error every part of the protocol layer reports.  `code` is an
 * {@link ErrorCode} (or an application code from a remote ERROR); `incomplete`
 * is true only when more bytes could still turn the input into a valid frame,
 * so a framing layer can tell "wait for more" apart from "corrupt".
 */
export class ProtocolError extends Error {
  /** Numeric code, see {@link ErrorCode}. */
  readonly code: number;
  /** The code's name, e.g. `'BAD_CHECKSUM'`. */
  readonly codeName: string;
  /** True only for INCOMPLETE: the bytes so far are a valid beginning. */
  readonly incomplete: boolean;
  /** True when the connection must be closed (BAD_MAGIC, UNKNOWN_VERSION, FRAME_TOO_LARGE). */
  readonly fatal: boolean;
  /** Request id the error concerns (from a REQUEST, REPLY or ERROR message); 0 when none. */
  readonly requestId: number;
  /** Kind byte of the offending message, 0 when unknown. */
  readonly kind: number;
  /** True when the peer reported this error (ERROR / GOAWAY message). */
  readonly remote: boolean;
  /** The `data` of a remote error body. */
  readonly data: unknown;
  /** For INCOMPLETE: total bytes the frame needs. */
  readonly needed: number;

  constructor(code: number, message: string, init: ProtocolErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ProtocolError';
    this.code = code;
    this.codeName = errorCodeName(code);
    this.incomplete = code === ErrorCode.INCOMPLETE;
    this.fatal = isFatalCode(code);
    this.requestId = init.requestId ?? 0;
    this.kind = init.kind ?? 0;
    this.remote = init.remote ?? false;
    this.data = init.data;
    this.needed = init.needed ?? 0;
  }
}
