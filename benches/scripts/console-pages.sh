#!/usr/bin/env bash
# Web console page times on one tenant with many releases (issue 21; BENCHMARKS.md, "Web console
# page times"). Fills the tenant through the library (cached: DATA_DIR.fill.json marks a data dir
# filled and caught up, and a rerun at the same size reuses it), serves it with
# `--console-listen 127.0.0.1:0`, waits for the governance worker (lag 0), mints an operator
# token and times each page over HTTP (`console-pages`, benches/tools).
#
#   benches/scripts/console-pages.sh [OUT_DIR] [RELEASES]     # default: no OUT_DIR, 100000
#   benches/scripts/console-pages.sh "" 500                   # the CI-sized smoke run (< 60 s)
#
# Extra flags for console-pages go in CONSOLE_PAGES_ARGS (e.g. "--refill --samples 400").
set -euo pipefail
out="${1:-}"
releases="${2:-100000}"
cd "$(dirname "$0")/../.."
cargo build --release -p release-ledger-cli -p bench-tools --bins >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release/console-pages"
samples=200
[ "$releases" -le 1000 ] && samples=50

machine() {
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet -- api projections ledger || echo ' (with uncommitted changes under api/ projections/ ledger/)')"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "memory: $(grep MemTotal /proc/meminfo | awk '{print $2 " kB"}')"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version)"
  echo "load average: $(cat /proc/loadavg)"
}

if [ -z "$out" ]; then
  exec "$bin" --releases "$releases" --samples "$samples" ${CONSOLE_PAGES_ARGS:-}
fi
mkdir -p "$out"
machine > "$out/machine.txt"
top -bn1 | head -20 > "$out/top-start.txt"
# The load average every 5 s while the bench runs (and what else runs: the top 5 processes).
(
  while true; do
    echo "$(date -u +%T) $(cat /proc/loadavg) | $(ps -eo pcpu,comm --sort=-pcpu --no-headers | head -5 | awk '{printf "%s %s, ", $1, $2}')"
    sleep 5
  done
) > "$out/load.txt" &
monitor=$!
trap 'kill $monitor 2>/dev/null || true' EXIT
"$bin" --releases "$releases" --samples "$samples" --json-out "$out/console-pages.json" ${CONSOLE_PAGES_ARGS:-} \
  > "$out/console-pages.txt" 2> "$out/console-pages.stderr.txt"
echo "load average at end: $(cat /proc/loadavg)" >> "$out/machine.txt"
cat "$out/console-pages.txt"
