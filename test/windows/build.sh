#!/usr/bin/env bash
# build.sh - cross-builds the Windows addon on Linux with mingw-w64:
# build-win/whirlwind.node (and build-win/poller-echo.exe, the backend alone).
# Incremental: a second run with nothing changed does nothing.
set -euo pipefail
. "$(dirname "$0")/env.sh"
ensure_tools
ensure_node_modules
# The sources binding.gyp builds on Windows (the target's own plus the
# OS=='win' condition's).  gyp files are Python literals; ours is also JSON
# once '#' comment lines are dropped.
GYP_SRCS=$(node -e '
  const fs = require("fs");
  const text = fs.readFileSync(process.argv[1], "utf8").split("\n").filter((l) => !/^\s*#/.test(l)).join("\n");
  const t = JSON.parse(text).targets.find((x) => x.target_name === "whirlwind");
  const srcs = [...t.sources];
  for (const [cond, body] of t.conditions || []) if (cond === "OS==\x27win\x27") srcs.push(...(body.sources || []));
  console.log(srcs.join(" "));
' "$ROOT/binding.gyp")
make -s -f "$ROOT/test/windows/Makefile.mingw" -j"$(nproc)" \
  ROOT="$ROOT" OUT="$OUT" GYP_SRCS="$GYP_SRCS" \
  NAPI_INC="$ROOT/node_modules/node-api-headers/include" \
  ADDON_INC="$ROOT/node_modules/node-addon-api" \
  NAPI_DEF="$ROOT/node_modules/node-api-headers/def/node_api.def"
log "built $OUT/whirlwind.node"
