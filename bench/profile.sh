#!/usr/bin/env bash
# Where the time goes during one hookgate-bench run: samples the gateway,
# redis-server and hookgate-bench itself with `perf record` (the cpu-clock
# software event, which works in VMs without hardware counters) for a few
# seconds mid-run, and reads each thread's /proc schedstat (time on a CPU
# vs. time runnable but waiting for one).
#
#   cargo build --release -p hookgate -p hookgate-bench
#   bench/profile.sh --events 60000 --gateway-concurrency 1024
#
# Needs perf (apt-get install linux-perf, or linux-tools-$(uname -r)).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-target/release/hookgate-bench}
SECONDS_TO_SAMPLE=${SAMPLE:-4}
OUT=${OUT:-$(mktemp -d /tmp/hookgate-profile.XXXXXX)}
command -v perf >/dev/null || { echo "perf not found" >&2; exit 1; }

"$BENCH" --no-ceiling "$@" >"$OUT/report.txt" 2>"$OUT/stderr.txt" &
bench_job=$!
pids=""
for _ in $(seq 1 300); do
  pids=$(sed -n 's/^hookgate-bench: pids: //p' "$OUT/stderr.txt")
  [ -n "$pids" ] && break
  sleep 0.1
done
[ -n "$pids" ] || { echo "the run did not start; see $OUT/stderr.txt" >&2; kill "$bench_job" 2>/dev/null; exit 1; }
read -r _ gw _ rs _ bn <<<"$pids"
sleep 1.5 # past the warm-up into the measured phase

declare -A before
threads() { for p in "$@"; do [ "$p" != "-" ] && ls -d /proc/"$p"/task/* 2>/dev/null; done; true; }
for t in $(threads "$gw" "$rs" "$bn"); do before[$t]=$(cat "$t/schedstat" 2>/dev/null || true); done
t0=$(date +%s%N)
for p in gw rs bn; do
  pid=${!p}
  [ "$pid" = "-" ] && continue
  perf record -q -e cpu-clock -F 999 -p "$pid" -o "$OUT/$p.perf" -- sleep "$SECONDS_TO_SAMPLE" 2>/dev/null &
done
wait $(jobs -p | grep -v "^$bench_job\$") 2>/dev/null || true
ms=$((($(date +%s%N) - t0) / 1000000))
echo "== per thread over ${ms} ms: on a CPU, and runnable but waiting for one (ms and % of the window)"
for t in $(threads "$gw" "$rs" "$bn"); do
  read -r c1 w1 _ <<<"${before[$t]:-0 0 0}"
  read -r c2 w2 _ <"$t/schedstat" 2>/dev/null || continue
  on=$(((c2 - c1) / 1000000)); wt=$(((w2 - w1) / 1000000))
  [ "$on" -gt 10 ] && printf '%-8s %-18s on-cpu %6d (%3d%%)  waiting %6d (%3d%%)\n' \
    "$(basename "$(dirname "$(dirname "$t")")")" "$(cat "$t/comm")" "$on" $((on * 100 / ms)) "$wt" $((wt * 100 / ms))
done
wait "$bench_job" || true
for p in gw rs bn; do
  [ -f "$OUT/$p.perf" ] || continue
  echo; echo "== $p: by binary"; perf report -i "$OUT/$p.perf" --no-children --sort dso --stdio 2>/dev/null | grep '%' | head -6 || true
  echo "== $p: top symbols"; perf report -i "$OUT/$p.perf" --no-children --sort sym --stdio 2>/dev/null | grep '%' | head -25 || true
done
echo; cat "$OUT/report.txt"
echo "(perf data in $OUT)"
