#!/bin/bash
# export-bench with ledger-audit A and B alternately, N rounds; one JSON line each
A=$1 B=$2 N=${3:-3}
for i in $(seq $N); do for b in $A $B; do
  rm -rf /var/tmp/s30/eb-dir
  /var/tmp/release-ledger-target/release/export-bench --entries 400000 --dir /var/tmp/s30/eb-dir --ledger-audit /var/tmp/ab/ledger-audit-$b --json > /var/tmp/s30/eb/audit-$b-$(date +%s).json 2>/dev/null
done; done
rm -rf /var/tmp/s30/eb-dir
