#!/bin/bash
# tp.sh BIN CLIENTS BATCH COMM OUT: DWARF perf of the busiest thread named COMM, 4 s, mid-run
bin=$1 c=$2 b=$3 comm=$4 out=$5
(/var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration 40 --json > $out.json 2>/dev/null &)
sleep 50
pid=$(pgrep -x "$(basename $bin | cut -c1-15)" | head -1)
tid=$(for t in /proc/$pid/task/*; do [ "$(cat $t/comm)" = "$comm" ] && echo "$(awk '{print $14+$15}' $t/stat) $(basename $t)"; done | sort -n | tail -1 | cut -d' ' -f2)
echo "pid $pid tid $tid"
perf record -e cpu-clock -F 1999 --call-graph dwarf,16384 -t $tid -o $out -- sleep 4 2>&1 | tail -1
sleep 4
