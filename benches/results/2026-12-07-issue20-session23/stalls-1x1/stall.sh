#!/bin/bash
# stall.sh SERVER OUT: a 1 x 1 ledger-bench run of 10 s while `perf trace -a` logs every fdatasync/fsync/write of 5 ms or more
bin=$1 out=$2
/var/tmp/ab/ledger-bench --server-bin $bin --clients 1 --batch 1 --payload-bytes 387 --duration 10 --json > $out.json 2>/dev/null &
b=$!
sleep 3
perf trace -a -e fdatasync,fsync,pwrite64,write --duration 5 -o $out.trace -- sleep 12 2>/dev/null
wait $b
python3 -c "
import json; l=json.load(open('$out.json')); print('events/s', round(l['appends']['eventsPerS']), l['appends']['latencyUs']); print([(round(t['eventsPerS']), t['maxLatencyUs']) for t in l['timeline']])"
