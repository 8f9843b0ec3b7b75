#!/bin/bash
cd /var/tmp/s26
A=/var/tmp/ab/release-ledger-A; B=/var/tmp/ab/release-ledger-A1
for r in 1 2; do
TMPDIR=/var/tmp DURATION=5 /work/main/benches/scripts/ab-servers.sh aba /var/tmp/ab/ledger-bench $A $B "1 64" "1 64" "1 1" "1 1"
TMPDIR=/var/tmp DURATION=5 /work/main/benches/scripts/ab-servers.sh aba /var/tmp/ab/ledger-bench $B $A "1 64" "1 64" "1 1" "1 1"
done
