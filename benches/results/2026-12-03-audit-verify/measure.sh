#!/bin/bash
# Same session, same machine: Ed25519 batch alone (export-bench, 100k fill) before and after
# interleaved ledger-audit verify runs on the 400k Arrow export.
set -u
R=/tmp/eb-helper/raw
T=/var/tmp/release-ledger-target/release
{
echo "# $(date -u +%FT%TZ) $(uptime)"
rm -rf /tmp/eb-helper/eb100k-a
$T/export-bench --entries 100000 --dir /tmp/eb-helper/eb100k-a --json > $R/export-bench-100k-start.json 2> $R/export-bench-100k-start.log
rm -rf /tmp/eb-helper/eb100k-a
for i in 1 2 3; do
  for b in before after; do
    /usr/bin/time -f "$b run $i: %e s %M KB (user %U s, sys %S s)" /tmp/eb-helper/ledger-audit-$b verify /tmp/eb-helper/entries.arrow > $R/verify-$b-$i.txt 2>&1
    tail -1 $R/verify-$b-$i.txt
  done
done
rm -rf /tmp/eb-helper/eb100k-b
$T/export-bench --entries 100000 --dir /tmp/eb-helper/eb100k-b --json > $R/export-bench-100k-end.json 2> $R/export-bench-100k-end.log
rm -rf /tmp/eb-helper/eb100k-b
echo "# $(date -u +%FT%TZ) $(uptime)"
} > $R/session.log 2>&1
