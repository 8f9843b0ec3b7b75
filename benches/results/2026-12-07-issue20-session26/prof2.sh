#!/bin/bash
for cb in "64 64" "16 64"; do set -- $cb
  FREQ=499 WAIT=40 DUR=25 bash prof-proc.sh /var/tmp/ab/release-ledger-P $1 $2 /var/tmp/s26/perf-P-${1}x${2}.data
  sleep 15
done
