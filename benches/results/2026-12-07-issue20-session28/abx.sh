#!/bin/bash
# XB (the experiment build, no variable: f56f1d4's behaviour) against NW (no projection worker) and NI (no event-id lookup), both orders
cd /work/main
for r in 1 2; do
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abx /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-XB /var/tmp/ab/release-ledger-NW "64 64" "16 64" "1 64"
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abx /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-NW /var/tmp/ab/release-ledger-XB "64 64" "16 64" "1 64"
done
for r in 1 2; do
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abx /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-XB /var/tmp/ab/release-ledger-NI "1 64" "64 64"
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abx /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-NI /var/tmp/ab/release-ledger-XB "1 64" "64 64"
done
