// The push both fan-out servers send: one whirlwind PUSH (topic "tick", a
// binary body of `size` bytes), length-prefixed, encoded once.
import { MessageEncoder, Messages } from '../../dist/src/index.js';

export const TOPIC = 'tick';

export function pushBody(size) {
  return Buffer.alloc(size, 0x5a);
}

export function pushFrame(size) {
  return new MessageEncoder().encodePrefixed(Messages.push(TOPIC, pushBody(size)));
}
