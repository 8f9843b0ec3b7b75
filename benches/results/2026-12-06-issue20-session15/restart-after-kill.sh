#!/usr/bin/env bash
# restart-after-kill.sh LEDGER_BENCH SERVER_BIN SECONDS: load a fresh server at 16 x 64 for SECONDS,
# kill -9 it, restart it on the same data dir, print ms from spawn to its "listening" line.
set -euo pipefail
bench=$1 bin=$2 secs=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/restart.XXXX")
fifo=$dir/out; mkfifo $fifo
"$bin" serve --json --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir $dir/data >$fifo 2>/dev/null &
pid=$!
read -r line <$fifo
cat $fifo >/dev/null &
addr=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['server']['grpc'])" "$line")
"$bench" --server http://$addr --server-pid $pid --data-dir $dir/data --clients 16 --batch 64 --payload-bytes 387 --duration $secs --json >$dir/bench.json 2>/dev/null || true
kill -9 $pid; wait $pid 2>/dev/null || true
wal=$(du -cb $dir/data/db/*.log | tail -1 | cut -f1)
start=$(date +%s%N)
"$bin" serve --json --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir $dir/data >$fifo 2>/dev/null &
pid=$!
read -r line <$fifo
end=$(date +%s%N)
echo "$(basename $bin) events/s $(python3 -c "import json; print(round(json.load(open('$dir/bench.json'))['appends']['eventsPerS']))") WAL at kill $((wal/1000000)) MB restart $(( (end-start)/1000000 )) ms"
kill $pid; wait $pid 2>/dev/null || true
rm -rf $dir
