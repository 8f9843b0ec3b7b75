import sys, re, statistics
from collections import defaultdict
lines=[l for l in open(sys.argv[1]) if l.startswith('server-')]
pairs=defaultdict(list)
for a,b in zip(lines[0::2], lines[1::2]):
    pa=a.split(); pb=b.split()
    cfg=pa[1]; assert cfg==pb[1]
    ea=float(pa[3]); eb=float(pb[3])
    p99a=int(pa[7]); p99b=int(pb[7])
    cpua=int(pa[11]); cpub=int(pb[11])
    pairs[cfg].append((eb/ea, p99a, p99b, cpua, cpub))
for cfg,v in pairs.items():
    r=[x[0] for x in v]
    print(f"{cfg}: pairs {len(v)}, B higher in {sum(x>1 for x in r)}, ratios {' '.join(f'{x:.2f}' for x in r)}, median {statistics.median(r):.2f}; p99 A {'/'.join(str(x[1]) for x in v)} B {'/'.join(str(x[2]) for x in v)} us; CPU/event A {'/'.join(str(x[3]) for x in v)} B {'/'.join(str(x[4]) for x in v)} us")
