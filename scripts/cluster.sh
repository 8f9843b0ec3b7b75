#!/usr/bin/env bash
# Starts a three-node Release Ledger cluster on loopback (docs/replication.md), for the demo and
# the tests:
#
#   scripts/cluster.sh [DIR] [BASE_PORT]     (default ./release-ledger-cluster 50061)
#
# Node N (1..3) serves gRPC on 127.0.0.1:BASE_PORT+N-1 and metrics on a free port (its log says
# which), with its data dir DIR/nodeN (the three share the keys `cluster init-keys` writes on the first
# start), its cluster file DIR/nodeN.toml and its log DIR/nodeN.log. Ctrl-C (or SIGTERM) stops
# the three. Set RELEASE_LEDGER_BIN to run a binary already built (skips set-up and the build).
set -euo pipefail
dir=$(realpath -m "${1:-./release-ledger-cluster}")
cd "$(dirname "$0")/.."
base=${2:-50061}
if [[ -z "${RELEASE_LEDGER_BIN:-}" ]]; then
  scripts/setup.sh
  cargo build --release -q --workspace --all-targets
  target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  RELEASE_LEDGER_BIN="$target_dir/release/release-ledger"
fi
bin=$RELEASE_LEDGER_BIN
mkdir -p "$dir"
if [[ ! -e "$dir/node1/keys/ledger.pem" ]]; then
  "$bin" cluster init-keys --data-dir "$dir/node1" --data-dir "$dir/node2" --data-dir "$dir/node3"
fi
pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
}
trap stop INT TERM
for n in 1 2 3; do
  {
    echo "node_id = $n"
    for m in 1 2 3; do
      printf '[[node]]\nid = %d\naddress = "127.0.0.1:%d"\n' "$m" $((base + m - 1))
    done
  } > "$dir/node$n.toml"
done
for n in 1 2 3; do
  "$bin" serve --data-dir "$dir/node$n" --cluster "$dir/node$n.toml" \
    --listen "127.0.0.1:$((base + n - 1))" --metrics-listen 127.0.0.1:0 \
    > "$dir/node$n.log" 2>&1 &
  pids+=("$!")
done
echo "cluster: gRPC on 127.0.0.1:$base..$((base + 2)), data and logs in $dir (Ctrl-C stops it)"
echo "status:  $bin cluster status --server http://127.0.0.1:$base --admin-key $dir/node1/keys/admin.pem"
wait
