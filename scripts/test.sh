#!/usr/bin/env bash
# The test command (README quick start): set-up, then every test of the workspace, in the
# one optimised profile that tests, benches and binaries share (ARCHITECTURE.md, "Build").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --workspace --no-fail-fast "$@"
  # nextest does not run doctests (the README's example is one).
  cargo test --release --workspace --doc
else
  cargo test --release --workspace --no-fail-fast "$@"
fi
