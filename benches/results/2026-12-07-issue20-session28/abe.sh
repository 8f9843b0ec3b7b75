#!/bin/bash
# E (e904206, the eighteenth session's last build, measured on the earlier AMD host) against H (f56f1d4), both orders
cd /work/main
for r in 1 2 3; do
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abe /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-E /var/tmp/ab/release-ledger-H "1 64"
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abe /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-H /var/tmp/ab/release-ledger-E "1 64"
done
TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abe /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-E /var/tmp/ab/release-ledger-H "64 64" "16 64"
TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s28/abe /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-H /var/tmp/ab/release-ledger-E "64 64" "16 64"
