// backends.ts - which backends exist here, which one runs, and why.
import { BackendUnavailableError, OptionError } from './errors.js';
import { loadAddon } from './native.js';
import { BACKENDS, type BackendName } from './options.js';

export interface BackendInfo {
  name: BackendName;
  available: boolean;
  /** Why the backend cannot run here ('' when it can). */
  reason: string;
}

/** Probe every backend on this machine. */
export function probeBackends(): BackendInfo[] {
  const addon = loadAddon();
  return BACKENDS.map((name) => {
    const p = addon.probe(name);
    return { name, available: p.available, reason: p.reason };
  });
}

/**
 * Pick the backend: an explicit name must be available (else a
 * BackendUnavailableError says why); `auto` honours WHIRLWIND_BACKEND, then
 * takes the first available of io_uring, epoll, iocp.
 */
export function chooseBackend(requested: 'auto' | BackendName = 'auto'): BackendName {
  if (requested !== 'auto' && !BACKENDS.includes(requested)) {
    throw new OptionError('backend', `must be one of auto, ${BACKENDS.join(', ')} (got ${String(requested)})`);
  }
  let name = requested;
  if (name === 'auto') {
    const env = process.env.WHIRLWIND_BACKEND;
    if (env !== undefined && env !== '' && env !== 'auto') {
      if (!BACKENDS.includes(env as BackendName)) {
        throw new OptionError('backend', `from WHIRLWIND_BACKEND must be one of auto, ${BACKENDS.join(', ')} (got ${env})`);
      }
      name = env as BackendName;
    }
  }
  const all = probeBackends();
  if (name !== 'auto') {
    const info = all.find((b) => b.name === name)!;
    if (!info.available) throw new BackendUnavailableError(name, info.reason);
    return name;
  }
  const best = all.find((b) => b.available);
  if (!best) {
    throw new BackendUnavailableError('auto', all.map((b) => `${b.name}: ${b.reason}`).join('; '));
  }
  return best.name;
}
