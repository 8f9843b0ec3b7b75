#!/bin/bash
# export-bench with ledger-audit H (63435fb's code) and P1 alternately; one JSON line each
for b in P1 H P1 H P1 H; do
  rm -rf /var/tmp/s29/eb-dir
  /var/tmp/ab/export-bench-P1 --entries 400000 --dir /var/tmp/s29/eb-dir --ledger-audit /var/tmp/ab/ledger-audit-$b --json > /var/tmp/s29/audit-$b-$(date +%s).json 2>/var/tmp/s29/audit-$b.err
done
rm -rf /var/tmp/s29/eb-dir
