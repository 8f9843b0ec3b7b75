import sys, pickle, collections
rows = pickle.load(open(sys.argv[1],'rb'))
tid = sys.argv[2] if len(sys.argv)>2 and sys.argv[2]!='all' else None
flt = sys.argv[3] if len(sys.argv)>3 else ''
c=collections.Counter(); n=0
for t, frames in rows:
    if tid and t!=tid: continue
    n+=1
    for f in set(frames):
        if flt in f: c[f]+=1
for f,k in c.most_common(int(sys.argv[4]) if len(sys.argv)>4 else 70): print(f"{k:5d} {100*k/n:5.1f}% {f[:150]}")
print(n)
