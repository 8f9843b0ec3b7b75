#!/bin/bash
# export-bench with ledger-audit P2 and H alternately (P2 = 945b532); one JSON line each
for b in P2 H P2 H P2 H; do
  rm -rf /var/tmp/s29/eb-dir
  /var/tmp/release-ledger-target/release/export-bench --entries 400000 --dir /var/tmp/s29/eb-dir --ledger-audit /var/tmp/ab/ledger-audit-$b --json > /var/tmp/s29/audit2-$b-$(date +%s).json 2>/dev/null
done
rm -rf /var/tmp/s29/eb-dir
