#!/usr/bin/env bash
# Installs what a fresh machine lacks to build Release Ledger. Idempotent and quiet when
# everything is already there; run by scripts/test.sh, scripts/serve.sh and .ci/run.
#
#   scripts/setup.sh            system packages (build)
#   scripts/setup.sh --python   also the interop tests' Python venv and Go packages (scripts/test.sh)
#
#   librocksdb-dev  RocksDB 7.8.3, linked statically by rocksdb 0.21 (ARCHITECTURE.md, "Build")
#   libclang-dev    bindgen, which librocksdb-sys runs on RocksDB's C header
#   rocksdb-tools   sst_dump: the erasure tests read SSTs with RocksDB's own reader
set -euo pipefail

# Installs whichever of the given Debian packages are missing (quiet when none is).
install_missing() {
  local missing=() package sudo=""
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "setup: installing ${missing[*]}" >&2
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_missing librocksdb-dev libclang-dev rocksdb-tools

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install the Rust toolchain (rustup) first" >&2
  exit 2
fi

# Every package of the lock file, for every platform: the tests read the dependency graph with
# `cargo metadata --offline` (tests/tests/it/dependencies.rs), which needs the manifests of
# crates a Linux build never downloads (android_system_properties, ...). Quick when cached.
cargo fetch --locked --manifest-path "$(cd "$(dirname "$0")/.." && pwd)/Cargo.toml" >/dev/null 2>&1 \
  || cargo fetch --locked --manifest-path "$(cd "$(dirname "$0")/.." && pwd)/Cargo.toml"

[ "${1:-}" = "--python" ] || exit 0

# The Go interop checks (tests/interop/go/, release_ledger_tests::go_tlogcheck) build against
# Go's reference sumdb code from Debian's packages, offline, in GOPATH mode.
#   golang-go                 the Go toolchain (1.19 on bookworm)
#   golang-golang-x-mod-dev   golang.org/x/mod/sumdb/{note,tlog} under /usr/share/gocode
install_missing golang-go golang-golang-x-mod-dev
# The web console's browser tests (api/cli/tests/service/console.rs): Debian's Chromium and its
# WebDriver, driven headless by selenium from the venv below.
install_missing chromium chromium-driver

# The Python interop checks (tests/interop/, run by api/cli/tests/service/{interop,metrics}.rs) use
# a venv outside the clone, like the cargo target dir, rebuilt only when requirements.txt
# changes: the stamp file holds the sha256 of the requirements it was built from.
root="$(cd "$(dirname "$0")/.." && pwd)"
requirements="$root/tests/interop/requirements.txt"
venv="${RELEASE_LEDGER_VENV:-/var/tmp/release-ledger-venv}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating the Python venv $venv" >&2
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    install_missing python3 python3-venv
  fi
  rm -f "$stamp"
  python3 -m venv "$venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q -r "$requirements"
  echo "$want" >"$stamp"
fi
