# pairs.py FILE A_NAME B_NAME: the ab-servers.sh lines in pairs (consecutive runs of one config), B/A of events/s
import sys, re, collections
a, b = sys.argv[2], sys.argv[3]
lines = [l for l in open(sys.argv[1]) if l.startswith("release-ledger") or l.startswith("server")]
by = collections.defaultdict(list)
for i in range(0, len(lines) - 1, 2):
    x, y = lines[i].split(), lines[i + 1].split()
    if x[1] != y[1]:
        continue
    run = {x[0]: float(x[3]), y[0]: float(y[3])}
    p50 = {x[0]: float(x[5]), y[0]: float(y[5])}
    by[x[1]].append((run[b] / run[a], p50[b] - p50[a]))
for config, pairs in by.items():
    ratios = sorted(r for r, _ in pairs)
    higher = sum(r > 1 for r in ratios)
    print(f"{config}: {len(pairs)} pairs, {b} higher in {higher}; ratios {', '.join(f'{r:.3f}' for r, _ in pairs)}; p50 {b}-{a} (us) {', '.join(f'{d:+.0f}' for _, d in pairs)}")
