#!/bin/bash
# ab-args.sh N FILE "LABEL BIN ARGS..." ...: like ab-env.sh, with extra verify arguments instead of environment
n=$1 file=$2; shift 2
for i in $(seq $n); do
  for v in "$@"; do
    read -r label bin args <<<"$v"
    /usr/bin/time -f "%e %U %S %M" -o /tmp/ab-args-time $bin verify $args $file > /dev/null 2>&1 || echo "$label failed"
    read e u s m < /tmp/ab-args-time
    python3 -c "import sys; e,u,s,m=map(float,sys.argv[2:6]); print(f'{sys.argv[1]:10s} {sys.argv[6]} wall {e:.2f} s, {400010/e:.0f} events/s, cpu {(u+s)/e:.2f} cores ({u+s:.2f} s, sys {s:.2f}), rss {m/1024:.0f} MB')" $label $e $u $s $m $(basename $file)
  done
done
