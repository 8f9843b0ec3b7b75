#!/bin/bash
# refold-ab.sh A B N: a fresh fold of the kept 400,010-entry governance log (a copy of its data dir, no
# projection store) by server builds A and B alternately, N each (refold.py: spawn to projection lag 0)
A=$1 B=$2 N=${3:-3}
for i in $(seq $N); do for b in $A $B; do
  rm -rf /var/tmp/s30/refold-data && cp -a /var/tmp/s29/eb-keep/data /var/tmp/s30/refold-data
  python3 /var/tmp/s30/refold.py /var/tmp/ab/release-ledger-$b /var/tmp/s30/refold-data
done; done
rm -rf /var/tmp/s30/refold-data
