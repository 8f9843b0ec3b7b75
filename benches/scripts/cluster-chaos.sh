#!/usr/bin/env bash
# The cluster's chaos measurement (docs/replication.md, "Tested"): three real nodes on loopback,
# four clients appending and recording every receipt, ROUNDS rounds of kill -9 of the leader,
# kill -9 of a follower and SIGSTOP of the leader (a third each, at random moments), then every
# acknowledged event checked at its seq on every node, the three logs compared and verified.
# Prints and writes the figures (rounds, acknowledged, lost, forks, failover median/p99) to
# REPORT. The test command runs the same test with 4 rounds.
#
#   benches/scripts/cluster-chaos.sh [ROUNDS] [REPORT]     (default 60, cluster-chaos.json)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-60}"
report="$(realpath -m "${2:-cluster-chaos.json}")"
CLUSTER_CHAOS_ROUNDS="$rounds" CLUSTER_CHAOS_REPORT="$report" \
  cargo nextest run --release --workspace --no-capture -E 'test(a_three_node_cluster_loses_nothing)'
cat "$report"
