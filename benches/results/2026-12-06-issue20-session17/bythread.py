import sys,re,collections
fn=sys.argv[1]; comm=sys.argv[2]; depth=int(sys.argv[3]); want=sys.argv[4] if len(sys.argv)>4 else None
samples=[];cur=None;head=None
for line in open(fn,errors='replace'):
    if not line.strip():
        if cur is not None: samples.append((head,cur))
        cur=None; continue
    if not line.startswith('\t'):
        if cur is not None: samples.append((head,cur))
        head=line.split()[0]; cur=[]; continue
    p=line.strip().split(None,1)
    if len(p)==2 and cur is not None: cur.append(p[1].replace(' (inlined)','')[:110])
c=collections.Counter(); n=0
for h,fr in samples:
    if h!=comm: continue
    if want:
        idx=[i for i,f in enumerate(fr) if want in f]
        if not idx: continue
        fr=fr[:idx[-1]]
    n+=1
    # depth frames from the root side (outermost) after skipping until want
    path=list(reversed(fr))[:depth]
    c[' > '.join(re.sub(r'<.*','',f)[:60] for f in path)]+=1
print(comm, n)
for k,v in c.most_common(30): print(f'{v:5d} {100*v/n:5.1f}% {k}')
