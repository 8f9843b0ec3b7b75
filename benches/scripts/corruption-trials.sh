#!/usr/bin/env bash
# Corruption trials (docs/reliability.md, "Corruption trials"): TRIALS trials spread over every
# file class of a stopped server's data dir, one byte flipped in each; the table on stderr and
# every trial as JSON under benches/results/corruption/. Exit 1 when a trial was served
# silently (the measurement ran; the store failed it), 2 when it could not run.
#
#   benches/scripts/corruption-trials.sh [TRIALS] [SEED]        (default 2250 trials: 250 per class; seed 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
trials=${1:-2250}
seed=${2:-1}
commit=$(git rev-parse --short HEAD)$(git diff --quiet || echo '-dirty')
out=benches/results/corruption/trials-$commit-n$trials-s$seed.json
mkdir -p "$(dirname "$out")"
scripts/setup.sh
# --workspace, not -p: the same dependency features as the test build, so nothing is rebuilt.
cargo build --release -q --workspace --bin corruption-trials
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
status=0
"$bin/corruption-trials" --trials "$trials" --seed "$seed" --json > "$out" || status=$?
echo "results: $out" >&2
exit "$status"
