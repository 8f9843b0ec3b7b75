#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for SECONDS_PER_TARGET (default 20),
# one after the other, printing one summary line per target. Exits 1 if any target crashed
# (panic, failed assertion, timeout, out of memory), 2 if it could not run.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   scripts/fuzz.sh 3600                   the long measurement: one hour per target
#
# Installs what is missing (system packages via scripts/setup.sh, a nightly toolchain,
# cargo-fuzz). The build has its own target dir outside the clone, so it never waits on or
# invalidates the stable build's: RELEASE_LEDGER_FUZZ_TARGET (default
# /var/tmp/release-ledger-fuzz-target). FUZZ_SANITIZER chooses the sanitizer (default none:
# every crate of ours forbids unsafe code, so AddressSanitizer would only instrument
# third-party code, at twice the cost; `FUZZ_SANITIZER=address` to use it).
# The growing corpus is kept in fuzz/corpus/<target> (not committed); the committed seeds are
# fuzz/seeds/<target> (tools/examples/fuzz_seeds.rs writes them). A crash leaves its input in
# fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run -s none --target-dir "$RELEASE_LEDGER_FUZZ_TARGET" <target> <file>
# See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi
target_dir="${RELEASE_LEDGER_FUZZ_TARGET:-/var/tmp/release-ledger-fuzz-target}"
sanitizer="${FUZZ_SANITIZER:-none}"

scripts/setup.sh
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

build_started=$(date +%s)
cargo +nightly fuzz build -s "$sanitizer" --target-dir "$target_dir"
echo "fuzz: build took $(( $(date +%s) - build_started ))s" >&2
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"

logs="$target_dir/logs"
mkdir -p "$logs"
failed=0
for target in "${targets[@]}"; do
  if [ ! -x "$bin_dir/$target" ]; then
    echo "fuzz: no target $target (cargo +nightly fuzz list)" >&2
    exit 2
  fi
done
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  # One log per run: two runs on one machine (a long measurement and CI's short one) must not
  # write the same file.
  log="$logs/$target.$$.log"
  started=$(date +%s)
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: libFuzzer's default (2 GB) made
  # explicit, as is -max_len (4096 or the largest seed, whichever is larger).
  if "$bin_dir/$target" "$corpus" "${seeds[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    result="ok"
  else
    result="CRASH (see $log; input in $artifacts/)"
    failed=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ -z "$runs" ]; then
    # A crash ends the run before the final stats: take the last status line's count.
    runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  fi
  status=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$status")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$status")
  printf 'fuzz: %-16s %5ss  runs=%-10s cov=%-6s ft=%-6s corpus=%-10s %s\n' \
    "$target" "$(( $(date +%s) - started ))" "${runs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
exit "$failed"
