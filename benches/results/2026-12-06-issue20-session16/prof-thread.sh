#!/bin/bash
# prof-thread.sh BIN CLIENTS BATCH OUT THREADNAME...: DWARF call graphs of the named server threads, 3 s mid-run
bin=$1 c=$2 b=$3 out=$4; shift 4
(/var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration 25 --json > $out.json 2>/dev/null &)
sleep 22
pid=$(pgrep -f "$(basename $bin) serve" | head -1)
[ -z "$pid" ] && pid=$(pgrep -n -f "$bin")
tids=""
for name in "$@"; do
  for t in /proc/$pid/task/*; do [ "$(cat $t/comm)" = "$name" ] && tids="$tids,$(basename $t)"; done
done
tids=${tids#,}
echo "pid $pid tids $tids"
perf record --call-graph dwarf,32768 -F 2999 -t $tids -o $out -- sleep 3 2>&1 | tail -1
sleep 6
