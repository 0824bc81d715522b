// vectors.ts - the test vectors printed in docs/protocol.md.  The document's
// hex is generated from these by test/tools/protocol-vectors.mjs and checked
// against the encoder by test/protocol-doc-vectors.test.ts, so the document
// cannot drift from the code.  Other implementations can use them as a
// conformance suite.

import { MessageEncoder, Messages, type OutgoingMessage } from './encoder.js';
import { ErrorCode } from './errors.js';

/** One test vector: a message and what it means. */
export interface TestVector {
  /** Stable name, used as the anchor in docs/protocol.md. */
  name: string;
  /** One sentence for the document. */
  description: string;
  /** The message the encoder turns into the vector's bytes. */
  message: OutgoingMessage;
  /** True when a section is DEFLATE-compressed: other DEFLATE encoders may produce different (equally valid) bytes. */
  compressed: boolean;
}

/** The vectors, in document order. */
export const TEST_VECTORS: readonly TestVector[] = Object.freeze([
  {
    name: 'ping',
    description: 'PING with id 1, no body, no checksum.',
    message: Messages.ping(1),
    compressed: false,
  },
  {
    name: 'pong',
    description: 'PONG answering PING 1.',
    message: Messages.pong(1),
    compressed: false,
  },
  {
    name: 'request-echo',
    description: 'REQUEST id 1 calling action "echo" with body {"hello": "world"}.',
    message: Messages.request(1, 'echo', { hello: 'world' }),
    compressed: false,
  },
  {
    name: 'request-attachment-checksum',
    description: 'REQUEST id 2 calling "upload" with body {"name": "a.txt"}, the 3-byte attachment "hi\\n" and a CRC-32 trailer.',
    message: Messages.request(2, 'upload', { name: 'a.txt' }, { attachment: Buffer.from('hi\n'), checksum: true }),
    compressed: false,
  },
  {
    name: 'reply-checksum',
    description: 'REPLY to request 1 with body {"hello": "world"} and a CRC-32 trailer.',
    message: Messages.reply(1, { hello: 'world' }, { checksum: true }),
    compressed: false,
  },
  {
    name: 'reply-empty',
    description: 'REPLY to request 2 with no body (a handler that returned nothing).',
    message: Messages.reply(2),
    compressed: false,
  },
  {
    name: 'error-unknown-action',
    description: 'ERROR answering request 3 with code 11 (UNKNOWN_ACTION).',
    message: Messages.error(3, ErrorCode.UNKNOWN_ACTION, 'no handler for action "nope"'),
    compressed: false,
  },
  {
    name: 'push-topic',
    description: 'PUSH with topic "tick" and body {"i": 0}.',
    message: Messages.push('tick', { i: 0 }),
    compressed: false,
  },
  {
    name: 'goaway-shutting-down',
    description: 'GOAWAY with code 15 (SHUTTING_DOWN).',
    message: Messages.goAway(ErrorCode.SHUTTING_DOWN, 'server is shutting down'),
    compressed: false,
  },
  {
    name: 'request-compressed-checksum',
    description:
      'REQUEST id 4 calling "store" with body {"text": "ab" repeated 200 times} compressed with raw DEFLATE (level 1) and a CRC-32 trailer.',
    message: Messages.request(4, 'store', { text: 'ab'.repeat(200) }, { compress: true, checksum: true }),
    compressed: true,
  },
]);

/** Encodes a vector with a default encoder: the frame INCLUDING its 4-byte length prefix. */
export function encodeVector(vector: TestVector): Buffer {
  return new MessageEncoder().encodePrefixed(vector.message);
}
