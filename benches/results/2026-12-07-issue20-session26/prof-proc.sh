#!/bin/bash
# prof-proc.sh BIN CLIENTS BATCH OUT: DWARF call graphs of the whole server process, 3 s mid-run
bin=$1 c=$2 b=$3 out=$4
(/var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration ${DUR:-25} --json > $out.json 2>/dev/null &)
sleep ${WAIT:-20}
pid=$(pgrep -f "$(basename $bin) serve" | head -1)
[ -z "$pid" ] && pid=$(pgrep -n -f "$bin")
echo "pid $pid"
perf record --call-graph dwarf,32768 -F ${FREQ:-1999} -p $pid -o $out -- sleep 3 2>&1 | tail -1
sleep 9
