#!/bin/bash
# XB2 (the second experiment build, no variable: f56f1d4's behaviour) against NS (the projection store's saves not written) and NC (the projection store without Snappy), both orders
cd /work/main
for s in NS NC; do
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abx2 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-XB2 /var/tmp/ab/release-ledger-$s "64 64" "16 64"
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abx2 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-$s /var/tmp/ab/release-ledger-XB2 "64 64" "16 64"
done
