#!/bin/bash
# P1 against P2 (P1 + projection store rows in MessagePack), both orders, two rounds
cd /work/main
for r in 1 2; do
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s29/abp2 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-P1 /var/tmp/ab/release-ledger-P2 "64 64" "16 64"
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s29/abp2 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-P2 /var/tmp/ab/release-ledger-P1 "64 64" "16 64"
done
