#!/bin/bash
# prof-flat.sh BIN CLIENTS BATCH OUT: perf record (no call graphs) of the whole server, 5 s mid-run
bin=$1 c=$2 b=$3 out=$4
(/var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration 20 --json > $out.json 2>/dev/null &)
sleep ${DELAY:-10}
pid=$(pgrep -f "$(basename $bin) serve" | head -1)
perf record -F 1999 -p $pid -o $out -- sleep 5 2>&1 | tail -1
sleep 12
