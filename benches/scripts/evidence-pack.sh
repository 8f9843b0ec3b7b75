#!/usr/bin/env bash
# Measures `release-ledger evidence` and `ledger-audit verify-evidence` on a log the demo filled
# RUNS times (default 100: ~21,700 entries, one tenant; each run adds a release whose risk reads
# every earlier run's failure, so the last run's pack is the largest). BENCHMARKS.md, "Evidence
# packs". Needs the release build (scripts/serve.sh or scripts/test.sh builds it).
#
#   benches/scripts/evidence-pack.sh [RUNS] [WORK_DIR]
set -euo pipefail
runs="${1:-100}"
work="${2:-/var/tmp/release-ledger-evidence-bench}"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
rl="$target_dir/release/release-ledger"
audit="$target_dir/release/ledger-audit"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
"$rl" serve --data-dir data --listen 127.0.0.1:50077 --metrics-listen 127.0.0.1:0 > serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 3
export RELEASE_LEDGER_TOKEN=$("$rl" token --key data/keys/admin.pem --ttl 1h --server http://127.0.0.1:50077)
started=$(date +%s)
for i in $(seq 1 "$runs"); do
  "$rl" demo --json --server http://127.0.0.1:50077 --admin-key data/keys/admin.pem --data-dir "demo-$i" > "demo-$i.json"
  sleep 1 # the demo's release ids are suffixed with the second it starts
done
echo "fill: $runs demo runs in $(( $(date +%s) - started )) s"
"$rl" checkpoint --server http://127.0.0.1:50077 --tenant vetclinic-001 --ledger-key data/keys/ledger.pub | sed -n 2p | sed 's/^/log size: /'
release=$(python3 -c "import json; d=json.load(open('demo-$runs.json')); print([r['releaseId'] for r in d['releases'] if r['status']=='Approved'][0])")
for i in 1 2 3; do
  /usr/bin/time -f "evidence: %e s, max RSS %M KB" "$rl" evidence --server http://127.0.0.1:50077 --tenant vetclinic-001 \
    --release "$release" --out "pack-$i" --ledger-key data/keys/ledger.pub --json
done
for i in 1 2 3; do
  /usr/bin/time -f "verify-evidence: %e s, max RSS %M KB" "$audit" verify-evidence pack-1 --ledger-key data/keys/ledger.pub
done
du -sh pack-1
