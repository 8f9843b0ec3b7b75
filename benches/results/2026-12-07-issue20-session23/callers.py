import sys,pickle,collections
rows=pickle.load(open(sys.argv[1],'rb')); tid=sys.argv[2]; pat=sys.argv[3]; depth=int(sys.argv[4])
c=collections.Counter(); n=0
for t,frames in rows:
    if tid!='all' and t!=tid: continue
    for i,f in enumerate(frames):
        if pat in f:
            n+=1
            c[' <- '.join(x[:60] for x in frames[i+1:i+1+depth])]+=1
            break
for k,v in c.most_common(25): print(v,k)
print(n)
