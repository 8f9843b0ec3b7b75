#!/bin/bash
# prof-all.sh BIN CLIENTS BATCH OUT: perf of the whole server (and the bench) 4 s mid-run, no call graphs
bin=$1 c=$2 b=$3 out=$4
(/var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration 20 --json > $out.json 2>/dev/null &)
sleep 20
perf record -e cpu-clock -F 4999 -a -o $out -- sleep 4 2>&1 | tail -1
sleep 4
