#!/bin/bash
# prof-a.sh BIN CLIENTS BATCH OUT [SECONDS]: system-wide DWARF call graphs (cpu-clock; -p with dwarf records nothing on this VM)
# for SECONDS (default 3) once the server's measured window has begun (server CPU above 0.5 cores for 2 s in a row).
bin=$1 c=$2 b=$3 out=$4 secs=${5:-3}
(/var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration ${DUR:-12} --json > $out.json 2>/dev/null &)
sleep 2
pid=$(pgrep -f "$(basename $bin) serve" | head -1)
hot=0; prev=$(awk '{print $14+$15}' /proc/$pid/stat)
while [ $hot -lt ${HOT:-2} ]; do
  sleep 1; cur=$(awk '{print $14+$15}' /proc/$pid/stat 2>/dev/null) || exit 1
  if [ $((cur - prev)) -gt 50 ]; then hot=$((hot+1)); else hot=0; fi; prev=$cur
done
echo "pid $pid"
perf record -e cpu-clock -a --call-graph dwarf,16384 -F ${FREQ:-999} -o $out -- sleep $secs 2>&1 | tail -1
while pgrep -f "ledger-bench --server-bin $bin" > /dev/null; do sleep 1; done
