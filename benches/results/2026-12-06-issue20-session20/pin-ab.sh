#!/bin/bash
# pin-ab.sh BIN C B ROUNDS: alternating runs, unpinned vs rayon's two verify threads pinned one per CPU (taskset, 1 s into the run)
bin=$1 c=$2 b=$3 n=$4
for i in $(seq $n); do
  for mode in free pin; do
    out=/tmp/pinab-$mode-$c-$b-$i.json
    /var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration 8 --warmup 2 --json > $out 2>/dev/null &
    bp=$!
    if [ $mode = pin ]; then
      for k in $(seq 50); do pid=$(pgrep -f "$(basename $bin) serve" | head -1); [ -n "$pid" ] && break; sleep 0.1; done
      sleep 1.5
      for t in /proc/$pid/task/*; do n=$(cat $t/comm); case $n in ledger-verify-0) taskset -p -c 0 $(basename $t) >/dev/null;; ledger-verify-1) taskset -p -c 1 $(basename $t) >/dev/null;; esac; done
    fi
    wait $bp
    python3 -c "
import json,sys;d=json.load(open('$out'));a=d['appends'];print('$mode', '$c x $b', round(a['eventsPerS']), 'p50', a['latencyUs']['p50'], 'p99', a['latencyUs']['p99'], 'cpu/ev', round(d['server']['cpuUsPerEvent'],1))"
  done
done
