// The protocol layer: layout, errors, codec, stream framing, server helpers.
export {
  MAGIC,
  VERSION,
  SUPPORTED_VERSIONS,
  HEADER_BYTES,
  CHECKSUM_BYTES,
  PREFIX_BYTES,
  MAX_ACTION_BYTES,
  Offset,
  Kind,
  Flag,
  KNOWN_FLAGS,
  kindName,
} from './layout.js';
export { ErrorCode, ProtocolError, errorCodeName, isFatalCode, type ProtocolErrorInit } from './errors.js';
export {
  CODEC_DEFAULTS,
  DEFAULT_MAX_FRAME_BYTES,
  type DecoderOptions,
  type EncoderOptions,
} from './defaults.js';
export { readHeader, verifyChecksum, checksumOf, type FrameHeader } from './header.js';
export {
  MessageEncoder,
  Messages,
  type OutgoingMessage,
  type CompressOption,
  type SendOptions,
  type ErrorBody,
} from './encoder.js';
export { MessageDecoder, type DecodedMessage } from './decoder.js';
export { FrameReader, sliceFrame, writeFramePrefix } from './stream.js';
export {
  ServerCodec,
  answerDecodeError,
  assertFromClient,
  assertFromServer,
  type DecodeErrorAnswer,
  type ServerCodecOptions,
} from './server.js';
export { scanMsgpack } from './msgpack.js';
export { TEST_VECTORS, encodeVector, type TestVector } from './vectors.js';
