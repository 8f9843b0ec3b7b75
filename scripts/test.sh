#!/usr/bin/env bash
# The test command (README quick start): set-up, then every test of the workspace, in the
# one optimised profile that tests, benches and binaries share (ARCHITECTURE.md, "Build").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python
# The tests' temporary files go to a TMPDIR of this run's own, which must be empty at the end:
# a test that leaves anything behind fails the command, naming it (README, "Development").
# Runs of the test command once left about 90 MB each in /tmp, until the disk was full.
tests_tmp=$(mktemp -d "${TMPDIR:-/tmp}/release-ledger-tests.XXXXXX")
status=0
if cargo nextest --version >/dev/null 2>&1; then
  TMPDIR=$tests_tmp cargo nextest run --release --workspace --no-fail-fast "$@" || status=$?
  # nextest does not run doctests (the README's example is one).
  TMPDIR=$tests_tmp cargo test --release --workspace --doc || status=$?
else
  TMPDIR=$tests_tmp cargo test --release --workspace --no-fail-fast "$@" || status=$?
fi
leftover=$(find "$tests_tmp" -mindepth 1 -maxdepth 1 | sort)
if [ -n "$leftover" ]; then
  echo "test.sh: the tests left these in TMPDIR (a test must remove what it creates):" >&2
  echo "$leftover" | head -20 >&2
  [ "$status" -ne 0 ] || status=1
fi
rm -rf "$tests_tmp"
exit "$status"
