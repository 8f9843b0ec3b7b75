#!/usr/bin/env bash
# The README's two commands, cold and in its order (issue 15 item 6): a fresh clone of HEAD, an
# empty target dir and Python venv; times `scripts/serve.sh` until the server listens, stops
# it, then times `scripts/test.sh`. System packages and the cargo registry are whatever the
# machine already has (a truly fresh machine also downloads them).
#
#   benches/scripts/cold-start.sh            # uses /var/tmp/rl-cold-{clone,target,venv}, removed after
set -u
repo="$(cd "$(dirname "$0")/../.." && pwd)"
clone=/var/tmp/rl-cold-clone target=/var/tmp/rl-cold-target venv=/var/tmp/rl-cold-venv
rm -rf "$clone" "$target" "$venv"
git clone -q "$repo" "$clone"
cd "$clone"
export CARGO_TARGET_DIR="$target" RELEASE_LEDGER_VENV="$venv"
echo "commit $(git rev-parse --short HEAD) start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
log=$(mktemp)
t0=$(date +%s)
scripts/serve.sh --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --console-listen 127.0.0.1:0 > "$log" 2>&1 &
pid=$!
until grep -q "gRPC" "$log"; do
  kill -0 $pid 2>/dev/null || { echo "serve.sh died:"; cat "$log"; exit 1; }
  sleep 2
done
t1=$(date +%s)
echo "serve.sh: listening after $((t1 - t0)) s (load $(cut -d' ' -f1-3 /proc/loadavg))"
pkill -TERM -f "$target/release/release-ledger serve"
wait $pid
t2=$(date +%s)
scripts/test.sh > "$log" 2>&1
rc=$?
t3=$(date +%s)
echo "test.sh: exit $rc after $((t3 - t2)) s (load $(cut -d' ' -f1-3 /proc/loadavg))"
grep -E "Summary" "$log"
rm -rf "$clone" "$target" "$venv" "$log"
exit $rc
