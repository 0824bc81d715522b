// The echo application of examples/echo.mjs (REQUEST "echo" answered by a
// REPLY carrying the request's body, after burning work-us of CPU), written
// for node:net with the same protocol and codec (dist/src/protocol), so the
// protocol twins measure the architecture, not the application.
//
// handleFrames(): one chunk's whole frames in, one buffer of answers out
// (replies batched per chunk, like net-echo.mjs).
//
// The protocol servers (examples/echo.mjs and the twins proto-net-echo.mjs,
// proto-net-piscina.mjs, proto-cluster-echo.mjs) all take
// --port <p> --host <h> --work-us <n>, print a line with "listening", and
// are driven with ww_loadgen in replay mode (one pre-encoded REQUEST "echo"
// with a 64-byte body, any whole frame back counts as its reply):
//
//   build/Release/ww_loadgen --host 127.0.0.1 --port <p> -c 100 -p 1 -d 3 -w 1 -t 1 -q \
//     --frame-file bench/frames/echo-64.bin
//
// (bench/frames/make-echo-frame.mjs rebuilds the frame file.)
import { ErrorCode, Kind, Messages, ServerCodec } from '../../dist/src/index.js';
import { burnUs } from './common.mjs';

/** A per-thread codec: node:net hands out a fresh buffer per read, so views stay valid (copyBuffers off). */
export function makeCodec() {
  const codec = new ServerCodec({ copyBuffers: false });
  let out = Buffer.allocUnsafe(64 * 1024);
  let used = 0;
  const put = (msg) => {
    let n = codec.encoder.encodeInto(msg, out, used, true);
    if (n < 0) {
      const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, used - n));
      out.copy(bigger, 0, 0, used);
      out = bigger;
      n = codec.encoder.encodeInto(msg, out, used, true);
    }
    used += n;
  };
  /** Answers one frame (no length prefix) into the batch. */
  const answer = (frame, workUs) => {
    let msg;
    try {
      msg = codec.decode(frame);
    } catch (error) {
      const { answer: a } = codec.answerFor(error);
      if (a) put(a);
      return;
    }
    if (msg.kind === Kind.PING) return put(Messages.pong(msg.id));
    if (msg.kind !== Kind.REQUEST) return;
    if (msg.action !== 'echo') return put(Messages.error(msg.id, ErrorCode.UNKNOWN_ACTION, `no handler for action "${msg.action}"`));
    if (workUs > 0) burnUs(workUs);
    put(Messages.reply(msg.id, msg.body, msg.attachment.length > 0 ? { attachment: msg.attachment } : {}));
  };
  /** Answers every whole frame of `whole` (length-prefixed); returns a copy of the answers (or null). */
  const handleFrames = (whole, workUs) => {
    used = 0;
    for (let off = 0; off < whole.length; ) {
      const len = whole.readUInt32LE(off);
      if (len > 0) answer(whole.subarray(off + 4, off + 4 + len), workUs);
      off += 4 + len;
    }
    return used === 0 ? null : Buffer.from(out.subarray(0, used));
  };
  return { handleFrames, answerOne: (frame, workUs) => (used = 0, answer(frame, workUs), Buffer.from(out.subarray(0, used))) };
}

