#!/usr/bin/env bash
# Build the framer/protocol-check fuzz target with libFuzzer + ASan + UBSan,
# replay every regression input, then fuzz for a bounded time.
#   bash native/fuzz/run.sh [seconds]     (default 60)
# Needs clang and libFuzzer (Debian: apt-get install clang libclang-rt-14-dev).
# Inputs that crash are written to native/fuzz/regressions/ as crash-*: keep
# them there (they are replayed on every run) and fix the bug.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
secs="${1:-60}"
CXX="${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14 || true)}"
if [ -z "$CXX" ]; then
  echo "fuzz: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$CXX" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  "$here/framer_fuzz.cc" "$here/../src/framer.cc" "$here/../src/protocol_check.cc" -o "$work/framer_fuzz"
# 1. Regressions and seeds must pass.
shopt -s nullglob
inputs=("$here"/regressions/* "$here"/corpus/*)
if [ "${#inputs[@]}" -gt 0 ]; then
  "$work/framer_fuzz" -runs=0 "${inputs[@]}" > "$work/replay.log" 2>&1 || { cat "$work/replay.log"; exit 1; }
  echo "fuzz: ${#inputs[@]} seed and regression inputs pass"
fi
# 2. A bounded run from the seed corpus (copied, so the repo is not written to).
# regressions/ holds only crash inputs, so a fresh clone may not have it:
# libFuzzer refuses an artifact prefix whose directory is missing.
mkdir -p "$here/regressions" "$work/corpus"
cp "$here"/corpus/* "$work/corpus/"
if ! "$work/framer_fuzz" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
     -artifact_prefix="$here/regressions/" -print_final_stats=1 "$work/corpus" > "$work/fuzz.log" 2>&1; then
  tail -40 "$work/fuzz.log"
  echo "fuzz: FAILED - the crashing input is in native/fuzz/regressions/" >&2
  exit 1
fi
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/fuzz.log" || true
echo "fuzz: ${secs}s, nothing found"
