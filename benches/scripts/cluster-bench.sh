#!/usr/bin/env bash
# Durable appends of a 3-node cluster beside a single node, in one run on one machine
# (BENCHMARKS.md, "Replication"): for each clients x batch, ledger-bench against a single node it
# spawns, then against the leader of a fresh three-node cluster on loopback (scripts/cluster.sh),
# the same events. The three nodes and the load generator share this machine's cores, so the
# cluster's figures are its CPU and fsync cost (three Raft logs, three ledgers), not a network's.
# JSON per run and summary.md under OUT.
#
#   benches/scripts/cluster-bench.sh [OUT]      (DURATION=10, CONFIGS="1x1 16x1 64x1 1x64 16x64")
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-benches/results/cluster-$(date -u +%Y%m%d-%H%M)}
duration=${DURATION:-10}
configs=${CONFIGS:-"1x1 16x1 64x1 1x64 16x64"}
mkdir -p "$out"
cargo build --release -q --workspace --bins
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"
cat "$out/machine.txt" >&2
base=50461
for config in $configs; do
  clients=${config%x*}; batch=${config#*x}
  echo "== single node, clients=$clients batch=$batch" >&2
  "$bin/ledger-bench" --clients "$clients" --batch "$batch" --payload-bytes 387 --duration "$duration" --json \
    > "$out/single-c$clients-b$batch.json"
  echo "== 3-node cluster, clients=$clients batch=$batch" >&2
  dir=$(mktemp -d /var/tmp/release-ledger-cluster-bench.XXXXXX)
  RELEASE_LEDGER_BIN="$bin/release-ledger" setsid scripts/cluster.sh "$dir" "$base" > "$dir/cluster.out" 2>&1 &
  cluster=$!
  leader=""
  for _ in $(seq 1 100); do
    leader=$("$bin/release-ledger" cluster status --json --server "http://127.0.0.1:$base" \
      --admin-key "$dir/node1/keys/admin.pem" 2>/dev/null \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["leaderAddress"] if d.get("leaderId") else "")' || true)
    [ -n "$leader" ] && break
    sleep 0.2
  done
  [ -n "$leader" ] || { echo "no leader" >&2; kill -- -"$cluster"; exit 1; }
  port=${leader##*:}
  pid=$(pgrep -f "release-ledger serve .*--listen 127.0.0.1:$port" | head -1)
  "$bin/ledger-bench" --server "http://$leader" --server-pid "$pid" --admin-key "$dir/node1/keys/admin.pem" \
    --clients "$clients" --batch "$batch" --payload-bytes 387 --duration "$duration" --json \
    > "$out/cluster-c$clients-b$batch.json"
  kill -TERM -- -"$cluster" 2>/dev/null || true
  wait "$cluster" 2>/dev/null || true
  rm -rf "$dir"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
python3 - "$out" "$configs" <<'PY' | tee "$out/summary.md"
import json, sys
out, configs = sys.argv[1], sys.argv[2].split()
print("| clients × batch | single node events/s | p50 / p99 ms | 3-node cluster events/s | p50 / p99 ms | cluster / single |")
print("|---|---:|---:|---:|---:|---:|")
for config in configs:
    c, b = config.split("x")
    row = []
    for kind in ("single", "cluster"):
        d = json.load(open(f"{out}/{kind}-c{c}-b{b}.json"))["appends"]
        row.append((d["eventsPerS"], d["latencyUs"]["p50"] / 1000, d["latencyUs"]["p99"] / 1000))
    (s, s50, s99), (k, k50, k99) = row
    print(f"| {c} × {b} | {s:,.0f} | {s50:.2f} / {s99:.2f} | {k:,.0f} | {k50:.2f} / {k99:.2f} | {k / s:.2f}× |")
PY
