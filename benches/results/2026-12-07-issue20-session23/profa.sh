#!/bin/bash
# profa.sh SERVER CLIENTS BATCH OUT: perf record -a (DWARF) for 3 s mid-run; perf script keeps comm,pid/tid
# (perf record -p of the server records nothing on this host), OUT.s holds "comm pid/tid" headers.
bin=$1 c=$2 b=$3 out=$4
/var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration ${DUR:-20} --json > $out.json 2>/dev/null &
sleep ${WAIT:-12}
pid=$(pgrep -f "$(basename $bin) serve" | head -1)
echo "server pid $pid"
perf record --call-graph dwarf,16384 -F 499 -a -o $out.data -- sleep 3 2>&1 | tail -1
wait
perf script -i $out.data -F comm,pid,tid,ip,sym --no-inline > $out.s 2>/dev/null
echo $pid > $out.pid
