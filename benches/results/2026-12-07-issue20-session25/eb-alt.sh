#!/bin/bash
# eb-alt.sh OUTDIR LABEL:BIN ... : export-bench --entries 400000 with each build in turn
out=$1; shift
for v in "$@"; do
  label=${v%%:*}; bin=${v#*:}
  n=1; while [ -e $out/export-bench-400k-$label-$n.json ]; do n=$((n+1)); done
  rm -rf /var/tmp/eb-alt-dir
  /var/tmp/ab/export-bench-B --entries 400000 --dir /var/tmp/eb-alt-dir --ledger-audit $bin --json > $out/export-bench-400k-$label-$n.json 2> $out/export-bench-400k-$label-$n.err
  python3 -c "
import json,sys;d=json.load(open(sys.argv[1]));l=d['ed25519BatchPerSecond']
print(sys.argv[2], 'limit', round(l), ' '.join(f\"{k} {round(d[k]['verifyEventsPerSecond'])} ({100*d[k]['verifyEventsPerSecond']/l:.1f} %) rss {round(d[k]['verifyPeakRssMb'])} MB\" for k in ['arrow','parquet','dataDir']))" $out/export-bench-400k-$label-$n.json $label-$n
done
rm -rf /var/tmp/eb-alt-dir
