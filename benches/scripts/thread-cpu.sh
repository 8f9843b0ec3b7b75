#!/usr/bin/env bash
# Server CPU by thread over one fixed-size run: a steadier A/B measure than events/s on a
# shared 2-core machine, where the host's speed drifts by 15-25 % between runs.
#
#   benches/scripts/thread-cpu.sh LEDGER_BENCH SERVER_BIN CLIENTS BATCH EVENTS
#
# Runs `LEDGER_BENCH --server-bin SERVER_BIN --clients C --batch B --payload-bytes 387 --events N`
# (which starts the server in a fresh data dir), samples every server thread's utime+stime from
# /proc/PID/task/*/stat every 0.2 s, keeps each thread's last value, and prints the seconds and
# microseconds per event summed by thread name, then the run's events/s. The pool that checks
# large requests in pieces is `ledger-verify-N` (before 2026-12-06's seventeenth session its
# threads inherited the name of the thread that started them, tokio-rt-worker). The run's JSON is left in
# ${TMPDIR:-/tmp}/thread-cpu-<server name>.json. BENCH_ARGS adds arguments to ledger-bench's
# (`BENCH_ARGS="--tenants 16"`).
set -euo pipefail
bench=$1 bin=$2 clients=$3 batch=$4 events=$5
name=$(basename "$bin")
tmp=${TMPDIR:-/tmp}
json="$tmp/thread-cpu-$name.json" samples="$tmp/thread-cpu-$name.samples"
# shellcheck disable=SC2086 # BENCH_ARGS is split into arguments on purpose.
"$bench" --server-bin "$bin" --clients "$clients" --batch "$batch" --payload-bytes 387 --events "$events" \
  ${BENCH_ARGS:-} --json >"$json" 2>/dev/null &
driver=$!
pid=""
for _ in $(seq 300); do
  pid=$(pgrep -x "${name:0:15}" | head -1 || true)
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { echo "thread-cpu: the server $name never started" >&2; exit 1; }
: >"$samples"
while kill -0 "$driver" 2>/dev/null; do
  for task in /proc/"$pid"/task/*; do
    stat=$(cat "$task/stat" 2>/dev/null) || continue
    comm=$(cat "$task/comm" 2>/dev/null) || continue
    # Fields after "pid (comm) ": utime and stime are the 12th and 13th.
    read -r -a fields <<<"${stat##*) }"
    echo "${task##*/} $comm ${fields[11]} ${fields[12]}"
  done >>"$samples"
  sleep 0.2
done
wait "$driver"
ticks=$(getconf CLK_TCK)
awk -v n="$events" -v name="$name" -v hz="$ticks" '
  { v = $3 + $4; if (v > max[$1]) { max[$1] = v; comm[$1] = $2 } }
  END {
    for (t in max) cpu[comm[t]] += max[t] / hz
    for (k in cpu) if (cpu[k] > 0) printf "%s %-16s %7.2f s  %6.2f us/event\n", name, k, cpu[k], cpu[k] * 1e6 / n
  }' "$samples" | sort -k2
python3 - "$json" "$name" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(sys.argv[2], "events/s", round(d["appends"]["eventsPerS"]), "server CPU/event", round(d["server"]["cpuUsPerEvent"], 1))
PY
