import collections,sys
# callers.py SCRIPT THREADPREFIX WORD [DEPTH]: the frames above the first frame containing WORD, for samples of THREADPREFIX
rows=[];cur=None
for line in open(sys.argv[1],errors='replace'):
    if not line.strip():
        if cur: rows.append(cur); cur=None
        continue
    if not line.startswith('\t'):
        if cur: rows.append(cur)
        cur=(line.split()[0],[]); continue
    p=line.strip().split(None,1)
    if len(p)==2: cur[1].append(p[1])
if cur: rows.append(cur)
th,word=sys.argv[2],sys.argv[3]; depth=int(sys.argv[4]) if len(sys.argv)>4 else 3
c=collections.Counter(); n=0
for t,fr in rows:
    if not t.startswith(th): continue
    idx=[i for i,f in enumerate(fr) if word in f]
    if not idx: continue
    i=idx[-1]; n+=1
    c[' <- '.join(f[:70] for f in fr[i:i+depth])]+=1
print(n,'samples')
for k,v in c.most_common(15): print(v,k)
