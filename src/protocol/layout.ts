// layout.ts - the one place that knows the byte layout of a whirlwind
// protocol message.  Nothing else in the tree reads or writes header fields
// by hand; docs/protocol.md draws the same table.
//
// A message is the content of one transport frame.  On the wire every frame
// is preceded by a 4-byte little-endian length prefix that the transport
// (native I/O threads, or FrameReader in stream.ts) adds and removes; the
// offsets below are relative to the first byte AFTER that prefix.
//
//   offset size field
//   ------ ---- ------------------------------------------------------------
//        0  u8  magic            0x57 ('W')
//        1  u8  version          1
//        2  u8  kind             Kind.*
//        3  u8  flags            Flag.* (unknown bits must be zero)
//        4 u32  id               request id; 0 = none
//        8 u16  code             ErrorCode for ERROR / GOAWAY, else 0
//       10  u8  actionLength     N, bytes of UTF-8 action name (0..255)
//       11  u8  reserved         must be 0
//       12 u32  bodyWireLength   BW, body bytes as sent (compressed or not)
//       16 u32  bodyLength       BL, body bytes after decompression
//       20 u32  attachWireLength AW, attachment bytes as sent
//       24 u32  attachLength     AL, attachment bytes after decompression
//       28   N  action           UTF-8
//     28+N  BW  body             msgpack (raw DEFLATE when BODY_DEFLATE)
//  28+N+BW  AW  attachment       raw bytes (raw DEFLATE when ATTACHMENT_DEFLATE)
//   L-4      4  crc32            only when CHECKSUM: CRC-32 of bytes [0, L-4)
//
//   L (the frame length) == 28 + N + BW + AW + (CHECKSUM ? 4 : 0), always.
//
// All multi-byte integers are little-endian.  Every field sits at a fixed
// offset so a native I/O thread can check magic, version, kind, flags,
// lengths and the CRC without parsing msgpack.

/** First byte of every message: ASCII 'W'. */
export const MAGIC = 0x57;
/** The protocol version this implementation speaks. */
export const VERSION = 1;
/** Versions this implementation accepts. */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze([1]);
/** Bytes of the fixed header. */
export const HEADER_BYTES = 28;
/** Bytes of the CRC-32 trailer present when Flag.CHECKSUM is set. */
export const CHECKSUM_BYTES = 4;
/** Bytes of the transport's length prefix. */
export const PREFIX_BYTES = 4;
/** Longest action name in bytes (the length is one byte). */
export const MAX_ACTION_BYTES = 255;
/** Largest value of a u32 length field. */
export const MAX_U32 = 0xffff_ffff;

/** Header field offsets (bytes from the start of the message). */
export const Offset = Object.freeze({
  MAGIC: 0,
  VERSION: 1,
  KIND: 2,
  FLAGS: 3,
  ID: 4,
  CODE: 8,
  ACTION_LENGTH: 10,
  RESERVED: 11,
  BODY_WIRE_LENGTH: 12,
  BODY_LENGTH: 16,
  ATTACH_WIRE_LENGTH: 20,
  ATTACH_LENGTH: 24,
  ACTION: 28,
} as const);

/** Message kinds (header byte 2). */
export const Kind = Object.freeze({
  /** Client -> server: call `action`; answered by exactly one REPLY or ERROR with the same id. */
  REQUEST: 1,
  /** Server -> client: the successful answer to REQUEST `id`. */
  REPLY: 2,
  /** The failed answer to REQUEST `id` (or, with id 0, a problem with a message that was not a request). */
  ERROR: 3,
  /** Server -> client: unsolicited message; `action` optionally names a topic. */
  PUSH: 4,
  /** Either direction: liveness probe; answered by PONG with the same id. */
  PING: 5,
  /** The answer to PING `id`. */
  PONG: 6,
  /** Either direction: the sender will close the connection; `code` says why. */
  GOAWAY: 7,
} as const);
export type Kind = (typeof Kind)[keyof typeof Kind];

const KIND_NAMES: readonly string[] = ['', 'REQUEST', 'REPLY', 'ERROR', 'PUSH', 'PING', 'PONG', 'GOAWAY'];
/** The name of a kind, e.g. `kindName(1) === 'REQUEST'`; `'UNKNOWN(n)'` otherwise. */
export function kindName(kind: number): string {
  return KIND_NAMES[kind] || `UNKNOWN(${kind})`;
}
/** Highest kind number defined by this version. */
export const MAX_KIND = 7;

/** Header flag bits (header byte 3). */
export const Flag = Object.freeze({
  /** A CRC-32 trailer follows the attachment. */
  CHECKSUM: 0x01,
  /** The body is compressed with raw DEFLATE (RFC 1951). */
  BODY_DEFLATE: 0x02,
  /** The attachment is compressed with raw DEFLATE (RFC 1951). */
  ATTACHMENT_DEFLATE: 0x04,
} as const);
/** Every flag bit defined by this version; any other bit set is BAD_MESSAGE. */
export const KNOWN_FLAGS = 0x07;
