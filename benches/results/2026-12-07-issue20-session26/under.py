# under.py SCRIPT CATEGORY_WORD DEPTH: self (leaf) frames of samples whose stack contains WORD, with DEPTH frames
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
    if len(p) == 2 and cur is not None: cur[1].append(re.sub(r'<[^<>]*(<[^<>]*>)*[^<>]*>', '', p[1])[:60])
if cur: rows.append(cur)
word, depth = sys.argv[2], int(sys.argv[3])
excl = sys.argv[4].split(',') if len(sys.argv) > 4 else []
sel = [fr for _, fr in rows if any(word in f for f in fr) and not any(e in ' '.join(fr) for e in excl)]
print(len(sel), 'of', len(rows))
c = collections.Counter(' <- '.join(fr[:depth]) for fr in sel)
for k, v in c.most_common(30): print(f'{v:5d} {100*v/len(rows):5.1f}% {k}')
