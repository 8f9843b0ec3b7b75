#!/usr/bin/env bash
# Interleaved A/B of release-ledger server binaries under the same load generator:
#   benches/scripts/ab-servers.sh OUT LEDGER_BENCH SERVER_A SERVER_B "clients batch" ...
# For each configuration, runs ledger-bench once against SERVER_A, then once against SERVER_B
# (each spawned in a fresh data dir), after waiting until the machine is at least 90 % idle over
# 3 s. One JSON per run under OUT/<server name>/, one summary line per run on stdout.
# DURATION (default 8) sets the measured window in seconds.
set -euo pipefail
out=$1 bench=$2 a=$3 b=$4
shift 4
wait_quiet() {
  for _ in $(seq 200); do
    read -r _ u n s idle io irq sirq st _ </proc/stat
    local t1=$((u + n + s + idle + io + irq + sirq + st)) i1=$idle
    sleep 3
    read -r _ u n s idle io irq sirq st _ </proc/stat
    local t2=$((u + n + s + idle + io + irq + sirq + st)) i2=$idle
    [ $((100 * (i2 - i1) / (t2 - t1))) -ge 90 ] && return 0
  done
  echo "ab-servers: the machine never went quiet" >&2
}
for config in "$@"; do
  read -r clients batch <<<"$config"
  for server in "$a" "$b"; do
    name=$(basename "$server")
    mkdir -p "$out/$name"
    wait_quiet
    json="$out/$name/ledger-c$clients-b$batch-$(date +%H%M%S).json"
    "$bench" --server-bin "$server" --clients "$clients" --batch "$batch" --payload-bytes 387 \
      --duration "${DURATION:-8}" --json >"$json" 2>/dev/null
    python3 - "$json" "$name" "$clients" "$batch" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
a = d["appends"]
print(f"{sys.argv[2]} {sys.argv[3]}x{sys.argv[4]} events/s {a['eventsPerS']:.0f} p50 {a['latencyUs']['p50']} "
      f"p99 {a['latencyUs']['p99']} us, server CPU/event {d['server']['cpuUsPerEvent']:.0f} us, "
      f"load before {d['config']['loadBefore'].split()[0]}")
PY
  done
done
