#!/usr/bin/env bash
# One ledger-bench run with the server's /metrics scraped every 0.5 s; prints events/s, p50 and
# the mean time a group commit spent making itself durable (`ledger_fsync_duration_seconds`:
# RocksDB's write and the anchor's record with its fdatasync, warm-up included):
#   benches/scripts/commit-time.sh OUT LEDGER_BENCH SERVER CLIENTS BATCH
# Interleave servers in a loop to compare them (BENCHMARKS.md, "Issue 20, eighth session").
# DURATION (default 8) sets the measured window in seconds.
set -euo pipefail
out=$1 bench=$2 server=$3 c=$4 b=$5
name=$(basename "$server")
mkdir -p "$out"
tag="$name-c$c-b$b-$(date +%H%M%S)"
"$bench" --server-bin "$server" --clients "$c" --batch "$b" \
  --payload-bytes 387 --duration "${DURATION:-8}" --json >"$out/$tag.json" 2>/dev/null &
pid=$!
url=
while kill -0 $pid 2>/dev/null; do
  if [ -z "$url" ]; then
    spid=$(pgrep -f -n "$server serve" || true)
    for p in $( [ -n "$spid" ] && ss -ltnpH 2>/dev/null | grep "pid=$spid," | awk '{print $4}' | sed 's/.*://'); do
      curl -s -m 1 "http://127.0.0.1:$p/metrics" | grep -q ledger_fsync_duration && url="http://127.0.0.1:$p/metrics"
    done
  fi
  [ -n "$url" ] && curl -s -m 1 "$url" >"$out/$tag.metrics.tmp" 2>/dev/null && [ -s "$out/$tag.metrics.tmp" ] && mv "$out/$tag.metrics.tmp" "$out/$tag.metrics"
  sleep 0.5
done
wait $pid
python3 - "$out/$tag.json" "$out/$tag.metrics" "$name" "$c" "$b" <<'PY'
import json, sys, re
d = json.load(open(sys.argv[1])); a = d["appends"]
m = open(sys.argv[2]).read()
def val(name):
    x = re.search(r"^" + re.escape(name) + r"(?:\{[^}]*\})? ([0-9.e+-]+)$", m, re.M)
    return float(x.group(1)) if x else float("nan")
s, n = val("ledger_fsync_duration_seconds_sum"), val("ledger_fsync_duration_seconds_count")
print(f"{sys.argv[3]} {sys.argv[4]}x{sys.argv[5]} events/s {a['eventsPerS']:.0f} p50 {a['latencyUs']['p50']} us; "
      f"durable writes per commit {1e6 * s / n:.0f} us mean over {n:.0f} commits")
PY
