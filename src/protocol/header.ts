// header.ts - reading and checking the fixed header, without msgpack or zlib.
// This is the cheap sanity check a native I/O thread can mirror byte for
// byte: fixed offsets, a magic byte, lengths that must sum to the frame length
// and a CRC-32 over everything before the trailer.

import { crc32 } from 'node:zlib';
import { ErrorCode, ProtocolError } from './errors.js';
import {
  CHECKSUM_BYTES,
  Flag,
  HEADER_BYTES,
  KNOWN_FLAGS,
  Kind,
  MAGIC,
  MAX_KIND,
  Offset,
  VERSION,
  kindName,
} from './layout.js';

/** The fixed header of one message, as read by {@link readHeader}. */
export interface FrameHeader {
  kind: Kind;
  flags: number;
  id: number;
  code: number;
  /** Bytes of the action name (at offset 28). */
  actionLength: number;
  /** Body bytes as they sit in the frame. */
  bodyWireLength: number;
  /** Body bytes after decompression (0 = no body). */
  bodyLength: number;
  /** Attachment bytes as they sit in the frame. */
  attachWireLength: number;
  /** Attachment bytes after decompression. */
  attachLength: number;
  /** Offset of the body in the frame. */
  bodyOffset: number;
  /** Offset of the attachment in the frame. */
  attachOffset: number;
  /** True when a CRC-32 trailer is present. */
  checksum: boolean;
}

function u32(frame: Uint8Array, at: number): number {
  return ((frame[at] as number) | ((frame[at + 1] as number) << 8) | ((frame[at + 2] as number) << 16)) + (frame[at + 3] as number) * 0x1000000;
}

/**
 * Reads and sanity-checks the header of the message that fills `frame`
 * exactly (a whole frame, without its length prefix).  Throws a
 * {@link ProtocolError}: BAD_MAGIC and UNKNOWN_VERSION are fatal; every other
 * failure carries the request id and kind when they could be read, so the
 * receiver can answer with an ERROR and keep the connection.  Verifies the
 * CRC-32 trailer when the CHECKSUM flag is set (BAD_CHECKSUM).
 */
export function readHeader(frame: Uint8Array): FrameHeader {
  const length = frame.length;
  if (length === 0) throw new ProtocolError(ErrorCode.BAD_MESSAGE, 'empty frame: a message needs a 28-byte header');
  if (frame[Offset.MAGIC] !== MAGIC) {
    throw new ProtocolError(ErrorCode.BAD_MAGIC, `bad magic byte 0x${(frame[0] as number).toString(16).padStart(2, '0')} (expected 0x57): not a whirlwind protocol message`);
  }
  if (length > Offset.VERSION && frame[Offset.VERSION] !== VERSION) {
    throw new ProtocolError(ErrorCode.UNKNOWN_VERSION, `unknown protocol version ${frame[Offset.VERSION]} (this peer speaks version ${VERSION})`);
  }
  const kind = length > Offset.KIND ? (frame[Offset.KIND] as number) : 0;
  const id = length >= Offset.ID + 4 ? u32(frame, Offset.ID) : 0;
  if (length < HEADER_BYTES) {
    throw new ProtocolError(ErrorCode.BAD_MESSAGE, `frame of ${length} bytes is shorter than the ${HEADER_BYTES}-byte header`, errorContext(kind, id));
  }
  if (kind === 0 || kind > MAX_KIND) throw new ProtocolError(ErrorCode.UNKNOWN_KIND, `unknown message kind ${kind}`, errorContext(kind, id));
  const flags = frame[Offset.FLAGS] as number;
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new ProtocolError(ErrorCode.BAD_MESSAGE, `unknown flag bits 0x${(flags & ~KNOWN_FLAGS).toString(16)}`, errorContext(kind, id));
  }
  if (frame[Offset.RESERVED] !== 0) throw new ProtocolError(ErrorCode.BAD_MESSAGE, 'reserved header byte 11 is not zero', errorContext(kind, id));
  const code = (frame[Offset.CODE] as number) | ((frame[Offset.CODE + 1] as number) << 8);
  const actionLength = frame[Offset.ACTION_LENGTH] as number;
  const bodyWireLength = u32(frame, Offset.BODY_WIRE_LENGTH);
  const bodyLength = u32(frame, Offset.BODY_LENGTH);
  const attachWireLength = u32(frame, Offset.ATTACH_WIRE_LENGTH);
  const attachLength = u32(frame, Offset.ATTACH_LENGTH);
  const checksum = (flags & Flag.CHECKSUM) !== 0;
  // Doubles hold these sums exactly (each term < 2^32), so no overflow.
  const declared = HEADER_BYTES + actionLength + bodyWireLength + attachWireLength + (checksum ? CHECKSUM_BYTES : 0);
  if (declared !== length) {
    throw new ProtocolError(
      ErrorCode.BAD_MESSAGE,
      `lengths disagree: the header declares a ${declared}-byte message but the frame has ${length} bytes`,
      errorContext(kind, id),
    );
  }
  // The CRC comes before the finer rules so a damaged field is reported as
  // what it is (BAD_CHECKSUM) rather than as the rule it happens to break.
  if (checksum) {
    const end = length - CHECKSUM_BYTES;
    if (checksumOf(frame, end) !== u32(frame, end)) {
      throw new ProtocolError(ErrorCode.BAD_CHECKSUM, `${kindName(kind)} ${id}: CRC-32 trailer does not match the message`, errorContext(kind, id));
    }
  }
  checkSection('body', (flags & Flag.BODY_DEFLATE) !== 0, bodyWireLength, bodyLength, kind, id);
  checkSection('attachment', (flags & Flag.ATTACHMENT_DEFLATE) !== 0, attachWireLength, attachLength, kind, id);
  checkKindRules(kind as Kind, id, code, actionLength, bodyLength, attachLength);
  const bodyOffset = HEADER_BYTES + actionLength;
  return {
    kind: kind as Kind,
    flags,
    id,
    code,
    actionLength,
    bodyWireLength,
    bodyLength,
    attachWireLength,
    attachLength,
    bodyOffset,
    attachOffset: bodyOffset + bodyWireLength,
    checksum,
  };
}

/**
 * The kind and request id a ProtocolError about this message carries: the id
 * counts as a request id for REQUEST, REPLY and ERROR (where it names a
 * request), and is 0 for every other kind.
 */
export function errorContext(kind: number, id: number): { kind: number; requestId: number } {
  return { kind, requestId: kind === Kind.REQUEST || kind === Kind.REPLY || kind === Kind.ERROR ? id : 0 };
}

function checkSection(name: string, deflated: boolean, wire: number, plain: number, kind: number, id: number): void {
  if (!deflated) {
    if (wire !== plain) {
      throw new ProtocolError(ErrorCode.BAD_MESSAGE, `uncompressed ${name}: wire length ${wire} differs from length ${plain}`, errorContext(kind, id));
    }
  } else if (wire === 0 || plain === 0) {
    throw new ProtocolError(ErrorCode.BAD_MESSAGE, `compressed ${name} must have non-zero lengths (wire ${wire}, length ${plain})`, errorContext(kind, id));
  }
}

function checkKindRules(
  kind: Kind,
  id: number,
  code: number,
  actionLength: number,
  bodyLength: number,
  attachLength: number,
): void {
  const name = kindName(kind);
  const fail = (what: string): never => {
    throw new ProtocolError(ErrorCode.BAD_MESSAGE, `${name} ${what}`, errorContext(kind, id));
  };
  const hasAction = kind === Kind.REQUEST || kind === Kind.PUSH;
  const hasCode = kind === Kind.ERROR || kind === Kind.GOAWAY;
  if (!hasAction && actionLength !== 0) fail('must not carry an action');
  if (!hasCode && code !== 0) fail(`must have code 0, has ${code}`);
  switch (kind) {
    case Kind.REQUEST:
      if (id === 0) fail('must have a non-zero id');
      if (actionLength === 0) fail('must name an action');
      break;
    case Kind.REPLY:
      if (id === 0) fail('must have a non-zero id');
      break;
    case Kind.ERROR:
      if (code === 0) fail('must have a non-zero code');
      break;
    case Kind.PUSH:
    case Kind.GOAWAY:
      if (id !== 0) fail(`must have id 0, has ${id}`);
      break;
    case Kind.PING:
    case Kind.PONG:
      if (bodyLength !== 0 || attachLength !== 0) fail('must have no body and no attachment');
      break;
  }
}

/** CRC-32 (ISO-HDLC, the zlib one) of frame[0, end). */
export function checksumOf(frame: Uint8Array, end: number): number {
  return crc32(frame.subarray(0, end));
}

/**
 * True when the message has no CHECKSUM trailer, or the trailer equals the
 * CRC-32 of every byte before it.
 */
export function verifyChecksum(frame: Uint8Array, header: FrameHeader): boolean {
  if (!header.checksum) return true;
  const end = frame.length - CHECKSUM_BYTES;
  return checksumOf(frame, end) === u32(frame, end);
}
