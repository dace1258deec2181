#!/usr/bin/env bash
# A/B of two gateway binaries on one scenario: runs hookgate-bench with
# --gateway-bin A, then B, alternating, PAIRS times; keeps every JSON report
# in $OUT and prints, per pair, B/A of end-to-end deliveries/s, ingest req/s
# and gateway CPU per delivery, with each run's share of the ceiling and the
# CPU other load took (machine.other_s). Quote the ratios, not the absolute
# figures: the machine drifts between runs.
#
#   bench/ab.sh /work/target-ab-base/release/hookgate target/release/hookgate 2 --events 30000
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 3 ]; then
  echo "usage: bench/ab.sh A_GATEWAY_BIN B_GATEWAY_BIN PAIRS [hookgate-bench flags...]" >&2
  exit 2
fi
A=$1 B=$2 PAIRS=$3
shift 3
BENCH=${BENCH:-target/release/hookgate-bench}
OUT=${OUT:-target/bench-results/ab}
mkdir -p "$OUT"
for bin in "$A" "$B"; do
  [ -x "$bin" ] || { echo "ab.sh: $bin is not an executable gateway binary" >&2; exit 2; }
done

for i in $(seq 1 "$PAIRS"); do
  for side in a b; do
    bin=$A
    [ "$side" = b ] && bin=$B
    echo "== pair $i, $side: $bin" >&2
    "$BENCH" --gateway-bin "$bin" --label "$side$i" --json-out "$OUT/$side$i.json" "$@" >"$OUT/$side$i.txt"
  done
done

fig='[.delivery.deliveries_per_sec, .ingest.requests_per_sec, (.gateway.cpu_s_per_1000_deliveries // 0),
      (.delivery.of_ceiling // 0), .machine.other_s, .machine.busy_s]'
printf '%-5s %26s %26s %22s %18s\n' pair "deliveries/s A -> B (B/A)" "ingest req/s A -> B (B/A)" \
  "gw CPU ms/dlv (B/A)" "other CPU s A / B"
for i in $(seq 1 "$PAIRS"); do
  jq -n -r --argjson a "$(jq -c "$fig" "$OUT/a$i.json")" --argjson b "$(jq -c "$fig" "$OUT/b$i.json")" --arg i "$i" '
    def r(x; y): if y > 0 then (x / y * 100 | round / 100 | tostring) else "-" end;
    def n(x): x | round | tostring;
    def c(x): x * 1000 | round / 1000 | tostring;
    [$i,
     "\(n($a[0])) -> \(n($b[0])) (\(r($b[0]; $a[0])))",
     "\(n($a[1])) -> \(n($b[1])) (\(r($b[1]; $a[1])))",
     "\(c($a[2])) -> \(c($b[2])) (\(r($b[2]; $a[2])))",
     "\(c($a[4])) / \(c($b[4]))"] | @tsv' |
    awk -F'\t' '{ printf "%-5s %26s %26s %22s %18s\n", $1, $2, $3, $4, $5 }'
done
