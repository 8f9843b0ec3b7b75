#!/usr/bin/env bash
# Every measurement of BENCHMARKS.md, in one run on one machine, with the baselines beside the
# ledger: ledger-bench (gRPC) and pg-baseline (PostgreSQL, started here on loopback) at the same
# clients x batch, the physical limits (Ed25519, BLAKE3, RocksDB sync writes) on the same
# events, and the scale curves. Results: JSON per run plus summary.md, under OUT.
#
#   benches/scripts/run-all.sh [OUT]            (SCALE_SIZES=10000,100000 to shorten the curves,
#                                                 SCALE_SIZES=none to skip them; DURATION=10)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-benches/results/$(date -u +%Y%m%d-%H%M)}
duration=${DURATION:-10}
scale_sizes=${SCALE_SIZES:-10000,100000,1000000,10000000}
mkdir -p "$out"
scripts/setup.sh
cargo build --release -q --workspace --bins
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "disk: $(df -h /var/tmp | awk 'NR==2 {print $1, $2}')"
  echo "kernel: $(uname -r)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"
cat "$out/machine.txt" >&2

configs=("1 1" "16 1" "64 1" "1 64" "16 64" "64 64")
for config in "${configs[@]}"; do
  read -r clients batch <<<"$config"
  group=$((clients * batch)); [ "$group" -le 8192 ] || group=8192
  echo "== clients=$clients batch=$batch" >&2
  "$bin/limits" --events 32768 --batch "$batch" --group "$group" --json > "$out/limits-c$clients-b$batch.json"
  "$bin/ledger-bench" --clients "$clients" --batch "$batch" --payload-bytes 387 --duration "$duration" --json \
    > "$out/ledger-c$clients-b$batch.json"
done

conn=$(benches/scripts/postgres.sh)
trap 'benches/scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
for config in "${configs[@]}"; do
  read -r clients batch <<<"$config"
  echo "== postgres clients=$clients batch=$batch" >&2
  "$bin/pg-baseline" --conn "$conn" --init --clients "$clients" --batch "$batch" --duration "$duration" --json \
    > "$out/pg-c$clients-b$batch.json"
done
benches/scripts/postgres.sh stop >/dev/null
trap - EXIT

if [ "$scale_sizes" != none ]; then
  echo "== scale curves at $scale_sizes" >&2
  "$bin/scale-bench" --sizes "$scale_sizes" --json > "$out/scale.jsonl"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
python3 benches/scripts/summarize.py "$out" | tee "$out/summary.md"
