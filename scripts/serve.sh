#!/usr/bin/env bash
# The main job (README quick start): set-up, build, and run the ledger server on the embedded
# default: RocksDB in ./release-ledger-data (keys created on first start), gRPC on
# 127.0.0.1:50051, Prometheus metrics on 127.0.0.1:9464, the web console on 127.0.0.1:9465
# (docs/console.md; RELEASE_LEDGER_CONSOLE_LISTEN or --console-listen moves it). Extra arguments
# go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# --all-targets: exactly the build the test command makes (test targets pull in dev-dependencies,
# which change the features of shared dependencies such as serde), so on a fresh machine one
# build serves both commands instead of two builds of everything above those dependencies.
cargo build --release -q --workspace --all-targets
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export RELEASE_LEDGER_CONSOLE_LISTEN="${RELEASE_LEDGER_CONSOLE_LISTEN:-127.0.0.1:9465}"
exec "$target_dir/release/release-ledger" serve "$@"
