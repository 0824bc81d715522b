// native.ts - finds and loads the addon once.  WHIRLWIND_ADDON=<path> picks a
// specific build (an ASan build, or the Windows cross-build under Wine).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeLayout {
  readonly [name: string]: number;
}

export interface ProbeResult {
  available: boolean;
  reason: string;
}

export interface NativeEngineHandle {
  listen(host: string, port: number, ipv6Only: boolean): { port: number; family: number; address: string };
  submit(batch: Uint8Array, length: number): number;
  resume(ring: number): void;
  takeLarge(id: number): Buffer | null;
  pendingBytes(token: number): number;
  shutdown(): void;
  stop(): void;
  block(): ArrayBuffer;
  liveTableOffset(thread: number): number;
  statsOffset(thread: number): number;
}

export interface NativeAddon {
  NativeEngine: new (options: Record<string, unknown>, onWake: () => void) => NativeEngineHandle;
  probe(backend: string): ProbeResult;
  layout: NativeLayout;
}

let cached: NativeAddon | undefined;

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('whirlwind: cannot find the package root (binding.gyp) above ' + fileURLToPath(import.meta.url));
}

export function addonPath(): string {
  const forced = process.env.WHIRLWIND_ADDON;
  if (forced) return forced;
  const root = packageRoot();
  for (const kind of ['Release', 'Debug']) {
    const p = join(root, 'build', kind, 'whirlwind.node');
    if (existsSync(p)) return p;
  }
  throw new Error(
    `whirlwind: the native addon is not built (looked in ${join(root, 'build')}). Run "npm install" or "npx node-gyp rebuild".`,
  );
}

export function loadAddon(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    cached = require(addonPath()) as NativeAddon;
  }
  return cached;
}
