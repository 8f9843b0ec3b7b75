#!/bin/bash
# ledger-audit verify of one export (400,010 entries), H and P2 alternately, wall and user time
for f in entries.arrow entries.parquet; do
  for i in 1 2 3 4 5; do
    for b in H P2; do
      /usr/bin/time -f "$b $f %e s wall %U s user %M KB" /var/tmp/ab/ledger-audit-$b verify /var/tmp/s29/eb-keep/$f > /dev/null
    done
  done
done
