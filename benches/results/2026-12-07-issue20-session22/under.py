import sys,pickle,collections
rows=pickle.load(open(sys.argv[1],'rb'))
root=sys.argv[2]; depth=int(sys.argv[3]); tid=sys.argv[4] if len(sys.argv)>4 else None
tree=collections.Counter(); tot=0; N=0
for t,f in rows:
    if tid and t!=tid: continue
    N+=1
    st=f[::-1]
    idx=[i for i,x in enumerate(st) if root in x]
    if not idx: continue
    i=idx[-1]; tot+=1
    path=tuple(x[:110] for x in st[i+1:i+1+depth])
    for d in range(1,len(path)+1): tree[path[:d]]+=1
print(f'{root}: {tot} of {N}')
for p,c in sorted(tree.items()):
    if c>=int(sys.argv[5] if len(sys.argv)>5 else 8): print(f'{c:5d}  '+'  '*(len(p)-1)+p[-1])
