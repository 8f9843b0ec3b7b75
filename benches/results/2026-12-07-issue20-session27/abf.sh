#!/usr/bin/env bash
# P (HEAD's server) against F64k (HTTP/2 max frame size 64 KiB advertised by the server), both orders.
cd /work/main
for round in 1 2; do
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/ab/s27/abf /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-P /var/tmp/ab/release-ledger-F64k "1 64" "1 64" "16 64" "64 64"
  TMPDIR=/var/tmp DURATION=5 benches/scripts/ab-servers.sh /var/tmp/ab/s27/abf /var/tmp/ab/ledger-bench /var/tmp/ab/release-ledger-F64k /var/tmp/ab/release-ledger-P "1 64" "1 64" "16 64" "64 64"
done
