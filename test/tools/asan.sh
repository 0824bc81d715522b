#!/usr/bin/env bash
# Run the test suite against an AddressSanitizer + UBSan build of the addon
# (Node itself is not instrumented; the runtimes are preloaded).
#   bash test/tools/asan.sh [vitest args...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -n "${WW_ASAN_DIR:-}" ]; then
  work="$WW_ASAN_DIR"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
# A copy of the sources, so the normal build/ stays as it is.
( cd "$root" && tar -cf - binding.gyp package.json native bench/native ) | ( cd "$work" && tar -xf - )
ln -sfn "$root/node_modules" "$work/node_modules"
( cd "$work" && npx --no-install node-gyp rebuild -j 2 -- -Dww_sanitize=1 > "$work/build.log" 2>&1 ) || { tail -30 "$work/build.log"; exit 1; }
addon="$work/build/Release/whirlwind.node"
# (grep -c, not -q: with pipefail an early-exiting grep fails the pipe.)
if [ "$(nm -D "$addon" | grep -c __asan_init)" = 0 ]; then
  echo "asan: the addon is not instrumented" >&2
  exit 1
fi
cd "$root"
ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
WHIRLWIND_ADDON="$addon" \
  npx --no-install vitest run --config test/vitest.config.ts "$@"
