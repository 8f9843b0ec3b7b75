#!/bin/bash
cd /var/tmp/s26
A=/var/tmp/ab/release-ledger-P
for B in /var/tmp/ab/release-ledger-XW /var/tmp/ab/release-ledger-XR; do
TMPDIR=/var/tmp DURATION=5 /work/main/benches/scripts/ab-servers.sh abx /var/tmp/ab/ledger-bench $A $B "1 64" "1 64" "64 64" "16 64" "1 1"
TMPDIR=/var/tmp DURATION=5 /work/main/benches/scripts/ab-servers.sh abx /var/tmp/ab/ledger-bench $B $A "1 64" "1 64" "64 64" "16 64" "1 1"
done
