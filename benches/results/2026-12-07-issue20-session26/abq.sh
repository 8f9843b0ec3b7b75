#!/bin/bash
cd /var/tmp/s26
for r in 1 2; do
TMPDIR=/var/tmp DURATION=5 /work/main/benches/scripts/ab-servers.sh abq /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-Q /var/tmp/ab/release-ledger-QG "64 64" "16 64" "1 64"
TMPDIR=/var/tmp DURATION=5 /work/main/benches/scripts/ab-servers.sh abq /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-QG /var/tmp/ab/release-ledger-Q "64 64" "16 64" "1 64"
done
