// Shared pieces of the node:net baseline servers: option parsing, the
// simulated per-message CPU work, and the u32-LE length-prefixed framing.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

/**
 * Parses `--port <p> [--host <h>] [--work-us <n>]` plus any extra options
 * (a node:util parseArgs `options` object). Exits with status 2 and a message
 * naming the option when a value is invalid.
 */
export function parseServerArgs(name, extra = {}) {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        'work-us': { type: 'string', default: '0' },
        ...extra,
      },
      strict: true,
    }));
  } catch (err) {
    fail(name, err.message);
  }
  const port = intOption(name, values, 'port', 0, 65535, true);
  const workUs = intOption(name, values, 'work-us', 0, 10_000_000);
  return { ...values, port, host: values.host, workUs };
}

export function intOption(name, values, key, min, max, required = false) {
  const raw = values[key];
  if (raw === undefined) {
    if (required) fail(name, `--${key} is required`);
    return undefined;
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    fail(name, `--${key} must be an integer in [${min}, ${max}], got '${raw}'`);
  }
  return n;
}

function fail(name, message) {
  process.stderr.write(`${name}: ${message}\n`);
  process.exit(2);
}

/** Busy-waits `us` microseconds on the monotonic clock (simulated CPU work). */
export function burnUs(us) {
  const end = performance.now() + us / 1000;
  while (performance.now() < end) {
    // spin
  }
}

/** Largest frame a server accepts before dropping the connection. */
export const MAX_FRAME = 64 * 1024 * 1024;

/**
 * Scans `buf` for whole frames (4-byte LE length, then that many bytes).
 * Returns the byte length of the whole-frame prefix and the number of frames
 * in it, or end = -1 when a frame announces more than MAX_FRAME bytes.
 */
export function scanFrames(buf) {
  let off = 0;
  let count = 0;
  while (buf.length - off >= 4) {
    const len = buf.readUInt32LE(off);
    if (len > MAX_FRAME) return { end: -1, count };
    if (buf.length - off - 4 < len) break;
    off += 4 + len;
    count++;
  }
  return { end: off, count };
}

/**
 * Calls `onFrames(whole, count)` with each run of whole frames that arrives
 * on `socket` (one call per incoming chunk), keeping partial frames between
 * chunks. Drops the connection on an oversized frame.
 */
export function onFrames(socket, handler) {
  let pending = null;
  socket.on('data', (chunk) => {
    const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    const { end, count } = scanFrames(buf);
    if (end < 0) {
      socket.destroy();
      return;
    }
    pending = end < buf.length ? buf.subarray(end) : null;
    if (count > 0) handler(end === buf.length ? buf : buf.subarray(0, end), count);
  });
}

/** Installs SIGINT/SIGTERM handlers that run `stop` and exit 0. */
export function exitOnSignals(stop) {
  const onSignal = () => {
    try {
      stop?.();
    } finally {
      process.exit(0);
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}
