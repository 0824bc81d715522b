// What both fan-out servers share: the push they send (one whirlwind PUSH,
// topic "tick", a binary body of `size` bytes, length-prefixed, encoded once)
// and the stdin protocol that starts a fan-out.
import { createInterface } from 'node:readline';
import { MessageEncoder, Messages } from '../../dist/src/index.js';

export const TOPIC = 'tick';

export function pushBody(size) {
  return Buffer.alloc(size, 0x5a);
}

export function pushFrame(size) {
  return new MessageEncoder().encodePrefixed(Messages.push(TOPIC, pushBody(size)));
}

/**
 * On each stdin line "go <rounds> <connections>": once `connected()` reaches
 * <connections> (the client may finish connecting before this process has
 * accepted every socket; bounded wait), call `pushRound()` <rounds> times
 * back to back (each returns the pushes it made) and print
 * "pushed <n> in <ms> ms start_ns=<t>".  start_ns is process.hrtime.bigint(),
 * CLOCK_MONOTONIC, the clock of ww_loadgen's first_ns/last_ns.
 */
export function onGo(connected, pushRound) {
  const whenConnected = (n, then, deadline = Date.now() + 30_000) => {
    if (connected() >= n || Date.now() > deadline) then();
    else setTimeout(() => whenConnected(n, then, deadline), 5);
  };
  createInterface({ input: process.stdin }).on('line', (line) => {
    const m = /^go (\d+) (\d+)$/.exec(line.trim());
    if (!m) return;
    whenConnected(Number(m[2]), () => {
      const start = process.hrtime.bigint();
      const t0 = performance.now();
      let n = 0;
      for (let r = 0; r < Number(m[1]); r++) n += pushRound();
      console.log(`pushed ${n} in ${(performance.now() - t0).toFixed(1)} ms start_ns=${start}`);
    });
  });
}
