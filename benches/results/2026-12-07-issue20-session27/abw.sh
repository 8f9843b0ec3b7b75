#!/usr/bin/env bash
# P (HEAD's server) against W (manual_wal_flush), both orders.
cd /work/main
for round in 1 2; do
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/ab/s27/abw /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-P /var/tmp/ab/release-ledger-W "1 64" "1 64" "16 64" "64 64" "1 1"
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/ab/s27/abw /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-W /var/tmp/ab/release-ledger-P "1 64" "1 64" "16 64" "64 64" "1 1"
done
