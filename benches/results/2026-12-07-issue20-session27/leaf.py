# leaf.py SCRIPT THREAD [DEPTH]: samples of THREAD by leaf symbol, and by the first frame matching a crate list
import collections, re, sys
rows = []; cur = None
for line in open(sys.argv[1], errors='replace'):
    if not line.strip():
        if cur: rows.append(cur)
        cur = None; continue
    if not line.startswith('\t'):
        if cur: rows.append(cur)
        cur = (line.split()[0], []); continue
    p = line.strip().split(None, 1)
    if len(p) == 2 and cur is not None: cur[1].append(p[1])
if cur: rows.append(cur)
rows = [r for r in rows if r[0].startswith(sys.argv[2])]
n = len(rows); print('samples', n)
c = collections.Counter(re.sub(r'<.*|\+0x.*', '', fr[0])[:90] if fr else '?' for _, fr in rows)
for k, v in c.most_common(int(sys.argv[3]) if len(sys.argv) > 3 else 40): print(f'  {v:6d} {100*v/n:5.1f}% {k}')
