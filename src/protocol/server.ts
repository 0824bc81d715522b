// server.ts - helpers for the server side of a connection: decode what a
// client may send, and decide how to answer a message that failed to decode
// (an ERROR and keep going, or a GOAWAY and close).  Encoding goes through
// MessageEncoder and the Messages builders, so replies, errors, pushes, pongs
// and GOAWAYs can be written straight into a send batch:
//
//   const n = codec.encoder.encodeInto(Messages.reply(id, body), batch, at, true);

import type { DecoderOptions, EncoderOptions } from './defaults.js';
import { type DecodedMessage, MessageDecoder } from './decoder.js';
import { MessageEncoder, Messages, type OutgoingMessage } from './encoder.js';
import { ErrorCode, ProtocolError } from './errors.js';
import { Kind, SUPPORTED_VERSIONS, kindName } from './layout.js';

/** What to do about a message that failed to decode. */
export interface DecodeErrorAnswer {
  /** The message to send back (an ERROR or a GOAWAY), or null to send nothing. */
  answer: OutgoingMessage | null;
  /** True when the connection must be closed after sending `answer`. */
  close: boolean;
}

/**
 * Maps a decode failure to the protocol's answer: fatal errors (BAD_MAGIC,
 * UNKNOWN_VERSION, FRAME_TOO_LARGE) get a GOAWAY with the same code and a
 * close; everything else gets an ERROR carrying the request id when it was
 * readable (id 0 otherwise) and the connection stays open.  A problem with a
 * GOAWAY, PONG, or ERROR the peer sent is not answered (no ping-pong of
 * errors); it is only reported.  Errors that are not ProtocolErrors map to
 * INTERNAL.
 */
export function answerDecodeError(error: unknown, checksum = false): DecodeErrorAnswer {
  const e = error instanceof ProtocolError ? error : new ProtocolError(ErrorCode.INTERNAL, String((error as Error)?.message ?? error));
  if (e.fatal) {
    const data = e.code === ErrorCode.UNKNOWN_VERSION ? { supportedVersions: SUPPORTED_VERSIONS } : undefined;
    return { answer: Messages.goAway(e.code, e.message, data, { checksum }), close: true };
  }
  if (e.kind === Kind.ERROR || e.kind === Kind.GOAWAY || e.kind === Kind.PONG) {
    return { answer: null, close: false };
  }
  // Only a REQUEST's id names something the peer waits for.
  const id = e.kind === Kind.REQUEST ? e.requestId : 0;
  return { answer: Messages.error(id, e.code, e.message, undefined, { checksum }), close: false };
}

/** Kinds a server accepts from a client. */
const FROM_CLIENT = new Set<number>([Kind.REQUEST, Kind.PING, Kind.PONG, Kind.GOAWAY]);
/** Kinds a client accepts from a server. */
const FROM_SERVER = new Set<number>([Kind.REPLY, Kind.ERROR, Kind.PUSH, Kind.PING, Kind.PONG, Kind.GOAWAY]);

/** Throws UNEXPECTED_KIND unless a server may receive `msg` from a client. */
export function assertFromClient(msg: DecodedMessage): DecodedMessage {
  if (!FROM_CLIENT.has(msg.kind)) {
    throw new ProtocolError(ErrorCode.UNEXPECTED_KIND, `a server does not accept ${kindName(msg.kind)} messages`, { kind: msg.kind });
  }
  return msg;
}

/** Throws UNEXPECTED_KIND unless a client may receive `msg` from a server. */
export function assertFromServer(msg: DecodedMessage): DecodedMessage {
  if (!FROM_SERVER.has(msg.kind)) {
    throw new ProtocolError(ErrorCode.UNEXPECTED_KIND, `a client does not accept ${kindName(msg.kind)} messages`, { kind: msg.kind });
  }
  return msg;
}

/** Options of a ServerCodec: decoder limits plus encoder policies. */
export interface ServerCodecOptions extends DecoderOptions, EncoderOptions {}

/**
 * One decoder and one encoder with a server's options: `decode` accepts only
 * what a client may send, `answerFor` turns its failures into the reply to
 * send, and `encoder` writes replies/pushes into a batch.
 */
export class ServerCodec {
  readonly decoder: MessageDecoder;
  readonly encoder: MessageEncoder;

  constructor(options: ServerCodecOptions = {}) {
    const { compressionLevel, compressThreshold, ...decoderOptions } = options;
    this.decoder = new MessageDecoder(decoderOptions);
    this.encoder = new MessageEncoder({ compressionLevel, compressThreshold });
  }

  /** Decodes a whole frame from a client (no prefix).  Throws ProtocolError. */
  decode(frame: Uint8Array): DecodedMessage {
    return assertFromClient(this.decoder.decode(frame));
  }

  /** The answer to a decode failure (see {@link answerDecodeError}); checksummed when the server requires checksums. */
  answerFor(error: unknown): DecodeErrorAnswer {
    return answerDecodeError(error, this.decoder.options.requireChecksum);
  }
}
