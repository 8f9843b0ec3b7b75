#!/bin/bash
# ledger-audit verify of one export (400,010 entries), builds A and B alternately: wall, user, peak RSS
A=$1 B=$2 F=${3:-entries.arrow} N=${4:-5}
for i in $(seq $N); do
  for b in $A $B; do
    /usr/bin/time -f "$b $F %e s wall %U s user %S s sys %M KB" /var/tmp/ab/ledger-audit-$b verify /var/tmp/s29/eb-keep/$F > /dev/null
  done
done
