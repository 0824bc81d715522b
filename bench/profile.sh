#!/usr/bin/env bash
# Where the time goes in one server under one load: samples the server with
# `perf record -e cpu-clock` (a software clock, so it works on VMs without
# hardware counters) while ww_loadgen drives it, then prints the split by
# thread, by library, and by system call.
#
#   npm run bench:profile                          raw echo (epoll), 100 x 1
#   bash bench/profile.sh [-c 100] [-p 16] [-s 64] [-d 3] [--server raw|net|c] [--backend epoll]
#
# Needs perf (Debian: apt-get install linux-perf).  Without it, exits 0 and
# says it skipped.  JS frames are named thanks to node --perf-basic-prof.
# Bounded: the load runs for -d seconds after 0.5 s warm-up; perf samples for
# d - 0.5 s inside that window.
set -euo pipefail
cd "$(dirname "$0")/.."

conns=100 pipeline=1 size=64 duration=3 server=raw backend=epoll port=$((17000 + RANDOM % 200))
while [ $# -gt 0 ]; do
  case "$1" in
    -c) conns=$2; shift 2 ;;
    -p) pipeline=$2; shift 2 ;;
    -s) size=$2; shift 2 ;;
    -d) duration=$2; shift 2 ;;
    --server) server=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

if ! command -v perf >/dev/null 2>&1; then
  echo "profile.sh: skipped: perf is not installed (Debian: apt-get install linux-perf)"
  exit 0
fi
[ -x build/Release/ww_loadgen ] || { echo "profile.sh: build/Release/ww_loadgen is missing; run npm install" >&2; exit 2; }

case "$server" in
  raw) cmd=(node --perf-basic-prof examples/raw-echo.mjs --backend "$backend" --stats) ;;
  net) cmd=(node --perf-basic-prof bench/servers/net-echo.mjs) ;;
  c) cmd=(build/Release/ww_c_echo) ;;
  *) echo "profile.sh: --server must be raw, net or c" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
srv_pid=
cleanup() {
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
  rm -rf "$tmp"
  rm -f "/tmp/perf-${srv_pid}.map"
}
trap cleanup EXIT

: >"$tmp/server.out"
"${cmd[@]}" --port "$port" --host 127.0.0.1 >"$tmp/server.out" 2>&1 &
srv_pid=$!
for _ in $(seq 50); do grep -q listening "$tmp/server.out" && break; sleep 0.1; done
grep -q listening "$tmp/server.out" || { echo "profile.sh: server did not start:"; cat "$tmp/server.out"; exit 1; }

echo "server: ${cmd[*]} (pid $srv_pid); load: -c $conns -p $pipeline -s $size, ${duration} s"
build/Release/ww_loadgen --port "$port" -c "$conns" -p "$pipeline" -s "$size" -d "$duration" -w 0.5 -q >"$tmp/lg.out" &
lg_pid=$!
sleep 0.7
sample=$(awk -v d="$duration" 'BEGIN { s = d - 0.5; if (s < 0.5) s = 0.5; print s }')
perf record -q -e cpu-clock -F 1999 -g -p "$srv_pid" -o "$tmp/perf.data" -- sleep "$sample" 2>/dev/null
wait "$lg_pid" || true
kill -TERM "$srv_pid"
wait "$srv_pid" 2>/dev/null || true

sed -n 's/^RESULT //p' "$tmp/lg.out" | node -e '
  const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(`rate ${Math.round(r.rate)}/s, p50 ${r.latency_us.p50} us, p99 ${r.latency_us.p99} us, errors ${r.errors}, loadgen cpu ${r.cpu_pct}%`);'
grep -q '^STATS ' "$tmp/server.out" && grep '^STATS ' "$tmp/server.out" | sed 's/^STATS //' | node -e '
  const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(`engine: frames ${s.framesIn}, JS batches ${s.jsBatches} (${(s.framesIn / s.jsBatches).toFixed(1)} frames each), ` +
    `I/O wake-ups ${s.ioWakeups} (${(s.framesIn / s.ioWakeups).toFixed(1)} frames each), ring stalls ${s.ring.stalls}`);' || true

report() { perf report -i "$tmp/perf.data" --stdio -g none "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
echo
echo "== samples by thread (tid == $srv_pid is the main/JS thread)"
report --no-children --sort pid | head -6
echo
echo "== by thread and library"
report --no-children --sort pid,dso | head -12
echo
echo "== system calls and softirq, inclusive (% of all samples)"
report --children --sort sym | grep -E '\] (__x64_sys_[a-z_0-9]+|net_rx_action|do_softirq[a-z_.0-9]*)$' | head -12
echo
echo "== top symbols, exclusive"
report --no-children --sort dso,sym | head -15
