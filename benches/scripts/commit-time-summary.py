#!/usr/bin/env python3
"""Summarises the lines of interleaved benches/scripts/commit-time.sh runs, per configuration and
server: medians of events/s, p50 and durable-write time per commit, and in how many rounds each
later server beat the first (alphabetically) one:
   python3 benches/scripts/commit-time-summary.py LOG"""
import re, sys, statistics as st, collections
rows = collections.defaultdict(list)
order = []
for line in open(sys.argv[1]):
    m = re.match(r"server-(\S+) (\S+) events/s (\d+) p50 (\d+) us; durable writes per commit (\d+) us", line)
    if m:
        s, cfg, ev, p50, dw = m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))
        rows[(cfg, s)].append((ev, p50, dw))
for cfg in sorted({c for c, _ in rows}):
    print(cfg)
    servers = sorted({s for c, s in rows if c == cfg})
    for s in servers:
        r = rows[(cfg, s)]
        print(f"  {s}: n={len(r)} events/s median {st.median(x[0] for x in r):.0f}, p50 median {st.median(x[1] for x in r):.0f} us, durable writes median {st.median(x[2] for x in r):.0f} us; all dw {[x[2] for x in r]}")
    base = servers[0]
    for s in servers[1:]:
        pairs = list(zip(rows[(cfg, base)], rows[(cfg, s)]))
        wins_ev = sum(b[0] > a[0] for a, b in pairs); wins_dw = sum(b[2] < a[2] for a, b in pairs)
        ratio = st.median(b[0] / a[0] for a, b in pairs)
        print(f"  {s} vs {base}: events/s higher in {wins_ev}/{len(pairs)} rounds (median ratio {ratio:.3f}), durable writes lower in {wins_dw}/{len(pairs)}")
