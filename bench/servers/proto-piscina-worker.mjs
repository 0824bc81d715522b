// Worker for proto-net-piscina.mjs: one message in, its encoded answer out.
import { makeCodec } from './proto-echo.mjs';

const { answerOne } = makeCodec();

export default function answer({ frame, workUs }) {
  return answerOne(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength), workUs);
}
