#!/bin/bash
cd /var/tmp/s26
A=/var/tmp/ab/release-ledger-P; B=/var/tmp/ab/release-ledger-M1
for r in 1 2; do
TMPDIR=/var/tmp DURATION=5 /work/main/benches/scripts/ab-servers.sh abm1 /var/tmp/ab/ledger-bench $A $B "1 64" "16 64" "64 64"
TMPDIR=/var/tmp DURATION=5 /work/main/benches/scripts/ab-servers.sh abm1 /var/tmp/ab/ledger-bench $B $A "1 64" "16 64" "64 64"
done
