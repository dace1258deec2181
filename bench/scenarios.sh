#!/usr/bin/env bash
# Runs the scenario matrix of BENCHMARKS.md, one hookgate-bench run each,
# printing each report and keeping its JSON in $OUT (default target/bench-results/).
#
#   cargo build --release -p hookgate -p hookgate-bench
#   bench/scenarios.sh                      # all scenarios
#   bench/scenarios.sh baseline fanout-10   # some of them
#   bench/scenarios.sh history-1m           # only by name: fills the store with 1,000,000 deliveries first
#
# Plugin scenarios need the plugin components:
#   (cd plugins && cargo build --target wasm32-wasip2 --release)
# (or set PASS_WASM and REDACT_WASM to their paths); otherwise they are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH=${BENCH:-target/release/hookgate-bench}
OUT=${OUT:-target/bench-results}
wasm() { # the first of plugins/target/... and target/wasm/... that exists
  for d in plugins/target target/wasm; do
    [ -f "$d/wasm32-wasip2/release/$1.wasm" ] && { echo "$d/wasm32-wasip2/release/$1.wasm"; return; }
  done
  echo "plugins/target/wasm32-wasip2/release/$1.wasm"
}
PASS_WASM=${PASS_WASM:-$(wasm plugin_template)}
REDACT_WASM=${REDACT_WASM:-$(wasm redact)}
# Wait for a quiet machine before each run, and run again when other load
# disturbed it (shared machines).
COMMON=(--wait-quiet 300 --retry-disturbed 2 ${EXTRA:-})

declare -A SCENARIOS=(
  [baseline]="--events 40000"
  [rate-5k]="--events 25000 --rate 5000"
  [rate-10k]="--events 50000 --rate 10000 --max-seconds 10"
  [payload-256]="--events 40000 --payload 256"
  [payload-64k]="--events 10000 --payload 65536"
  [fanout-10]="--events 5000 --fanout 10"
  [slow-50ms]="--events 10000 --slow-receiver-ms 50"
  [fail-10pct]="--events 20000 --fail-ratio 0.1"
  [pending-100k]="--events 12000 --fanout 10 --slow-receiver-ms 50 --drain-seconds 300"
  [plugin-pass]="--events 20000 --plugins pass-through --plugin-wasm $PASS_WASM"
  [plugin-redact]="--events 20000 --plugins redact --plugin-wasm $REDACT_WASM"
  [concurrency-1024]="--events 40000 --gateway-concurrency 1024"
  [webhooks-50k]="--events 20000 --webhooks 0,50000"
  [cluster]="--events 40000 --store redis,redis-cluster"
  [cluster-256]="--events 40000 --payload 256 --store redis,redis-cluster"
  [history-1m]="--events 40000 --payload 256 --history 0,1000000"
)
ORDER=(baseline rate-5k rate-10k payload-256 payload-64k fanout-10 slow-50ms fail-10pct pending-100k
  plugin-pass plugin-redact concurrency-1024 webhooks-50k cluster cluster-256)

[ -x "$BENCH" ] || { echo "build first: cargo build --release -p hookgate -p hookgate-bench" >&2; exit 1; }
mkdir -p "$OUT"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ORDER[@]}")
for name in "${names[@]}"; do
  flags=${SCENARIOS[$name]:-}
  [ -n "$flags" ] || { echo "unknown scenario: $name" >&2; exit 1; }
  case $name in
    plugin-pass) [ -f "$PASS_WASM" ] || { echo "skip $name: no $PASS_WASM" >&2; continue; } ;;
    plugin-redact) [ -f "$REDACT_WASM" ] || { echo "skip $name: no $REDACT_WASM" >&2; continue; } ;;
  esac
  echo "=== $name: $flags" >&2
  # shellcheck disable=SC2086
  "$BENCH" "${COMMON[@]}" $flags --label "$name" --json-out "$OUT/$name.json"
done
