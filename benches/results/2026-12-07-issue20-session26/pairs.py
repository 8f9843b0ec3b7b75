# pairs.py FILE BASE: the runs of an ab-servers.sh log in consecutive pairs; each pair's
# other-build / BASE events/s ratio, by configuration
import collections, re, sys
base = sys.argv[2]
lines = [l.split() for l in open(sys.argv[1]) if ' events/s ' in l]
by = collections.defaultdict(list)
for a, b in zip(lines[0::2], lines[1::2]):
    assert a[1] == b[1], (a, b)
    runs = {a[0]: a, b[0]: b}
    other = [k for k in runs if k != base][0]
    ratio = float(runs[other][3]) / float(runs[base][3])
    by[(a[1], other)].append(ratio)
for (config, other), ratios in by.items():
    s = sorted(ratios)
    print(f"{other} / {base} at {config}: {len(s)} pairs, higher in {sum(r > 1 for r in s)}, ratios {', '.join(f'{r:.2f}' for r in ratios)}, median {s[len(s)//2] if len(s)%2 else (s[len(s)//2-1]+s[len(s)//2])/2:.3f}")
