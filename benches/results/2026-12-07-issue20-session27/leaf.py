# leaf.py SCRIPT THREAD [DEPTH]: samples of THREAD by leaf symbol, and by the first frame matching a crate list
import collections, re, sys
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../scripts'))
import perf_stacks
rows = [(comm, fr) for comm, _, fr in perf_stacks.read(sys.argv[1])]
rows = [r for r in rows if r[0].startswith(sys.argv[2])]
n = len(rows); print('samples', n)
c = collections.Counter(re.sub(r'<.*|\+0x.*', '', fr[0])[:90] if fr else '?' for _, fr in rows)
for k, v in c.most_common(int(sys.argv[3]) if len(sys.argv) > 3 else 40): print(f'  {v:6d} {100*v/n:5.1f}% {k}')
