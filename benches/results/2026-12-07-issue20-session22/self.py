import sys, pickle, collections
rows = pickle.load(open(sys.argv[1],'rb'))
tid = sys.argv[2] if len(sys.argv)>2 and sys.argv[2]!='all' else None
depth = int(sys.argv[3]) if len(sys.argv)>3 else 0
selfc = collections.Counter(); n=0; N=len(rows)
for t, frames in rows:
    if tid and t!=tid: continue
    n+=1
    if frames: selfc[tuple(frames[:depth+1])]+=1
for f,c in selfc.most_common(50): print(f"{c:6d} {100*c/n:5.1f}% {100*c/N:5.1f}%all  "+" <- ".join(x[:90] for x in f))
print(n, N)
