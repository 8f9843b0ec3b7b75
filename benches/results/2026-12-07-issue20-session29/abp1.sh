#!/bin/bash
# H (63435fb's server code) against P1 (body parsed from a str, identifier byte table), both orders, two rounds
cd /work/main
for r in 1 2; do
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s29/abp1 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-H /var/tmp/ab/release-ledger-P1 "64 64" "16 64" "1 64" "1 1"
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/s29/abp1 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-P1 /var/tmp/ab/release-ledger-H "64 64" "16 64" "1 64" "1 1"
done
