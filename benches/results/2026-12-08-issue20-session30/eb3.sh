#!/bin/bash
# export-bench (its Ed25519 limit the best of three measurements since this session) with ledger-audit B, N runs; one JSON file each
B=$1 N=${2:-3}
for i in $(seq $N); do
  rm -rf /var/tmp/s30/eb-dir
  /var/tmp/release-ledger-target/release/export-bench --entries 400000 --dir /var/tmp/s30/eb-dir --ledger-audit /var/tmp/ab/ledger-audit-$B --json > /var/tmp/s30/eb3/audit-$B-$(date +%s).json 2>/dev/null
done
rm -rf /var/tmp/s30/eb-dir
