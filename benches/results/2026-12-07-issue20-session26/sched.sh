#!/bin/bash
# sched.sh BIN CLIENTS BATCH OUT: perf sched timehist of 0.5 s mid-run
bin=$1 c=$2 b=$3 out=$4
(/var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration 25 --json > $out.json 2>/dev/null &)
sleep 22
perf sched record -o $out.data -- sleep 0.5 2>&1 | tail -1
perf sched timehist -w -i $out.data > $out.txt 2>/dev/null
sleep 8
