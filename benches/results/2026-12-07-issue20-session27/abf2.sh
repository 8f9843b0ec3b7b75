#!/usr/bin/env bash
# P against F1m (1 MiB frames) at 1 x 64 and 64 x 64, and P against F64k at 1 x 1 and 16 x 1, both orders.
cd /work/main
TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/ab/s27/abf2 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-P /var/tmp/ab/release-ledger-F1m "1 64" "1 64" "64 64"
TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/ab/s27/abf2 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-F1m /var/tmp/ab/release-ledger-P "1 64" "1 64" "64 64"
TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/ab/s27/abf2 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-P /var/tmp/ab/release-ledger-F64k "1 1" "16 1"
TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/ab/s27/abf2 /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-F64k /var/tmp/ab/release-ledger-P "1 1" "16 1"
