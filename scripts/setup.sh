#!/usr/bin/env bash
# Installs what a fresh machine lacks to build Release Ledger. Idempotent and quiet when
# everything is already there; run by scripts/test.sh, scripts/serve.sh and .ci/run.
#
#   librocksdb-dev  RocksDB 7.8.3, linked statically by rocksdb 0.21 (ARCHITECTURE.md, "Build")
#   libclang-dev    bindgen, which librocksdb-sys runs on RocksDB's C header
set -euo pipefail

packages=(librocksdb-dev libclang-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install the Rust toolchain (rustup) first" >&2
  exit 2
fi
