#!/bin/bash
# spillsize.sh BIN INPUT: the largest size of any deleted temp file the audit holds open, polled every 10 ms
"$1" verify "$2" > /dev/null 2>&1 &
pid=$!; max=0
while kill -0 $pid 2>/dev/null; do
  for f in /proc/$pid/fd/*; do
    t=$(readlink $f 2>/dev/null); case "$t" in *"(deleted)"*) s=$(stat -L -c %s $f 2>/dev/null || echo 0); [ "${s:-0}" -gt $max ] && max=$s;; esac
  done
  sleep 0.01
done
echo "largest spill file: $max bytes"
