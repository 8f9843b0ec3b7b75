#!/usr/bin/env bash
# What TLS and token checks cost an append and a read: ledger-bench's append-query mix (16
# appending clients, 4 query clients doing GetInclusionProof + GetEntry) against
#   baseline  a release-ledger binary without access control (BASELINE_BIN), plaintext;
#   token     this build, plaintext, every request carrying the admin key's operator token;
#   tls       this build, TLS (a test CA made with openssl), every request carrying the token;
# each ROUNDS times, interleaved, SECONDS each, one fresh data dir per run. Prints one line per
# run and the raw JSON of each run to OUT_DIR.
#
#   benches/scripts/access-overhead.sh BASELINE_BIN [SECONDS] [ROUNDS]
set -euo pipefail
baseline_bin=${1:?usage: access-overhead.sh BASELINE_BIN [SECONDS] [ROUNDS]}
seconds=${2:-10}
rounds=${3:-3}
target=${CARGO_TARGET_DIR:-/var/tmp/release-ledger-target}
new_bin="$target/release/release-ledger"
bench="$target/release/ledger-bench"
out_dir=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$out_dir"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# A CA and a server certificate for 127.0.0.1 (openssl, as an operator would make them).
openssl req -x509 -newkey ed25519 -nodes -days 1 -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ed25519 -nodes -subj "/CN=localhost" -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
  -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null

run() { # name bin scheme extra-serve-args...
  local name=$1 bin=$2 scheme=$3
  shift 3
  local data="$work/$name-$round"
  "$bin" serve --json --data-dir "$data" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 "$@" \
    > "$work/serve.out" 2> "$work/serve.err" &
  local pid=$!
  for _ in $(seq 100); do [ -s "$work/serve.out" ] && break; sleep 0.1; done
  local grpc
  grpc=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["server"]["grpc"])' "$work/serve.out")
  RELEASE_LEDGER_CA_CERT=$([ "$scheme" = https ] && echo "$work/ca.pem" || true) \
    "$bench" --server "$scheme://$grpc" --server-pid "$pid" --admin-key "$data/keys/admin.pem" \
    --clients 16 --mix append-query --query-clients 4 --duration "$seconds" --json \
    > "$out_dir/$name-$round.json" 2> "$work/bench.err" || { cat "$work/bench.err" >&2; exit 1; }
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$out_dir/$name-$round.json" "$name" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
a, q = d["appends"], d["query"]
print(f'{sys.argv[2]:9} appends/s {a["eventsPerS"]:7.0f} (p50 {a["latencyUs"]["p50"]:5} us, p99 {a["latencyUs"]["p99"]:5} us)'
      f'  GetEntry/s {q["entriesPerS"]:6.0f} (p50 {q["getEntryUs"]["p50"]:5} us, p99 {q["getEntryUs"]["p99"]:5} us)'
      f'  GetInclusionProof p50 {q["inclusionProofUs"]["p50"]:5} us  errors {d["errors"]["total"]}')
PY
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); ${seconds}s per run; raw: $out_dir"
for round in $(seq "$rounds"); do
  run baseline "$baseline_bin" http
  run token "$new_bin" http
  run tls "$new_bin" https --tls-cert "$work/server.pem" --tls-key "$work/server.key"
done
