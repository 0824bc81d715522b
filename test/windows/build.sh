#!/usr/bin/env bash
# build.sh - cross-builds the Windows addon on Linux with mingw-w64:
# build-win/whirlwind.node (and build-win/poller-echo.exe, the backend alone).
# Incremental: a second run with nothing changed does nothing.
set -euo pipefail
. "$(dirname "$0")/env.sh"
ensure_tools
ensure_node_modules
make -s -f "$ROOT/test/windows/Makefile.mingw" -j"$(nproc)" \
  ROOT="$ROOT" OUT="$OUT" \
  NAPI_INC="$ROOT/node_modules/node-api-headers/include" \
  ADDON_INC="$ROOT/node_modules/node-addon-api" \
  NAPI_DEF="$ROOT/node_modules/node-api-headers/def/node_api.def"
log "built $OUT/whirlwind.node"
