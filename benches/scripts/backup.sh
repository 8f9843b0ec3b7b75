#!/usr/bin/env bash
# What an online backup costs: one server, filled with FILL_EVENTS appends (ledger-bench, 16
# clients), then
#   idle      `release-ledger backup` of the idle server: seconds to stage, stream and verify;
#   quiet     ledger-bench appends for SECONDS (16 clients), no backup;
#   backups   the same appends while `release-ledger backup` runs back to back;
# quiet and backups alternate ROUNDS times on the same server (the log grows across runs, so
# each pair is compared with itself). Prints one line per run; raw JSON to OUT_DIR.
#
#   benches/scripts/backup.sh [FILL_EVENTS] [SECONDS] [ROUNDS]
set -euo pipefail
fill=${1:-100000}
seconds=${2:-10}
rounds=${3:-3}
target=${CARGO_TARGET_DIR:-/var/tmp/release-ledger-target}
rl="$target/release/release-ledger"
bench="$target/release/ledger-bench"
out_dir=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$out_dir"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

data="$work/data"
"$rl" serve --json --data-dir "$data" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  > "$work/serve.out" 2> "$work/serve.err" &
pid=$!
for _ in $(seq 100); do [ -s "$work/serve.out" ] && break; sleep 0.1; done
grpc=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["server"]["grpc"])' "$work/serve.out")
export RELEASE_LEDGER_SERVER="http://$grpc"
export RELEASE_LEDGER_TOKEN=$("$rl" token --key "$data/keys/admin.pem" --ttl 1h)

appends() { # name
  "$bench" --server "http://$grpc" --server-pid "$pid" --admin-key "$data/keys/admin.pem" \
    --clients 16 --duration "$seconds" --json > "$out_dir/$1.json" 2> "$work/bench.err" \
    || { cat "$work/bench.err" >&2; exit 1; }
  python3 - "$out_dir/$1.json" "$1" "${2:-}" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
a = d["appends"]
print(f'{sys.argv[2]:12} appends/s {a["eventsPerS"]:7.0f} (p50 {a["latencyUs"]["p50"]:5} us, p99 {a["latencyUs"]["p99"]:6} us,'
      f' max {a["latencyUs"]["max"]:6} us)  errors {d["errors"]["total"]}  {sys.argv[3]}')
PY
}

backup_once() { # dir -> prints seconds, bytes, entries
  "$rl" backup --json --to "$1" --ledger-key "$data/keys/ledger.pub" > "$1.json"
  python3 - "$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
entries = sum(t["entries"] for t in d["tenants"])
print(f'{d["seconds"]:.2f} s, {d["bytes"]} bytes, {d["files"]} files, {entries} entries')
PY
  rm -rf "$1"
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); fill $fill events, ${seconds}s per run; raw: $out_dir"
"$bench" --server "http://$grpc" --admin-key "$data/keys/admin.pem" --clients 16 --events "$fill" --json \
  > "$out_dir/fill.json" 2> "$work/bench.err" || { cat "$work/bench.err" >&2; exit 1; }
echo "idle         backup: $(backup_once "$work/idle-backup")"
for round in $(seq "$rounds"); do
  appends "quiet-$round"
  stop="$work/stop-$round"
  (
    n=0
    while [ ! -e "$stop" ]; do
      backup_once "$work/backup-$round-$n" >> "$work/backups-$round.txt"
      n=$((n + 1))
    done
  ) &
  loop=$!
  appends "backups-$round" "(backups taken meanwhile: $(sleep 0; echo pending))" > "$work/line" || exit 1
  touch "$stop"
  wait "$loop"
  sed "s/(backups taken meanwhile: pending)/(backups taken meanwhile: $(wc -l < "$work/backups-$round.txt"); last: $(tail -1 "$work/backups-$round.txt"))/" "$work/line"
done
kill "$pid"; wait "$pid" 2>/dev/null || true
# The server's side of each backup: staging (both checkpoints and the manifest's hashes).
cp "$work/serve.err" "$out_dir/serve.log"
python3 - "$work/serve.err" <<'PY'
import json, re, sys
staged = [l for l in open(sys.argv[1]) if "backup staged" in l]
ms = [int(m.group(1)) for l in staged for m in [re.search(r'elapsed_ms[=:]"?(\d+)', l)] if m]
print(f"server       staging of each backup (ms): {ms}")
PY
