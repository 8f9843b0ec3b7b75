# ebsum.py DIR: each export-bench JSON (audit-BUILD-TIME.json) in time order: the run's Ed25519 limit,
# verify events/s and share of the limit per format; then per build the mean rate against the
# mean of every run's limit (the limit is the same measurement in every run, whichever build)
import glob, json, os, statistics, sys
rows = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], 'audit-*.json')), key=lambda f: f.rsplit('-', 1)[1]):
    d = json.load(open(f)); b = os.path.basename(f).split('-')[1]
    rows.append((b, d))
    L = d['ed25519BatchPerSecond']
    print(os.path.basename(f), f"limit {L:,.0f}/s", *[f"{k} {d[k]['verifyEventsPerSecond']:,.0f} ({100*d[k]['verifyEventsPerSecond']/L:.1f} %, {d[k]['verifyPeakRssMb']:.0f} MB)" for k in ('arrow', 'parquet', 'dataDir')])
limits = [d['ed25519BatchPerSecond'] for _, d in rows]
print(f"limits: {', '.join(f'{l:,.0f}' for l in limits)}; median {statistics.median(limits):,.0f}")
M = statistics.median(limits)
for b in sorted({b for b, _ in rows}):
    for k in ('arrow', 'parquet', 'dataDir'):
        r = [d[k]['verifyEventsPerSecond'] for bb, d in rows if bb == b]
        print(f"{b} {k}: {', '.join(f'{x:,.0f}' for x in r)}; median {statistics.median(r):,.0f} = {100*statistics.median(r)/M:.1f} % of the median limit")
