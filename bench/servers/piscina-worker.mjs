// Worker for net-piscina.mjs: burns the simulated CPU work, returns the frame.
import { burnUs } from './common.mjs';

export default function echoFrame({ frame, workUs }) {
  if (workUs > 0) burnUs(workUs);
  return frame;
}
