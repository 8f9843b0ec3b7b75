#!/usr/bin/env bash
# The governance story (README quick start): set-up, build, and play `release-ledger demo` on an
# embedded server in a fresh data dir: a policy, a freeze that delays a release and lifts, QA and
# security signals, approvals, publication, a release rejected by a critical CVE and one escalated
# by recent failures. Extra arguments go to `demo` (e.g. --keep to explore afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# --all-targets: exactly the build the test command makes (test targets pull in dev-dependencies,
# which change the features of shared dependencies such as serde), so on a fresh machine one
# build serves both commands instead of two builds of everything above those dependencies.
cargo build --release -q --workspace --all-targets
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target_dir/release/release-ledger" demo "$@"
