import sys,pickle,collections,re
stacks=pickle.load(open(sys.argv[1],'rb'))
root=sys.argv[2]; depth=int(sys.argv[3]) if len(sys.argv)>3 else 1
N=len(stacks)
def short(s): 
    s=re.sub(r'\+0x[0-9a-f]+$','',s); return s[:130]
tree=collections.Counter(); tot=0
for comm,st in stacks:
    idx=[i for i,f in enumerate(st) if root in f]
    if not idx: continue
    i=idx[-1]; tot+=1
    path=tuple(short(f) for f in st[i+1:i+1+depth])
    for d in range(1,len(path)+1): tree[path[:d]]+=1
print(f'{root}: {tot} of {N} samples ({100*tot/N:.1f}%)')
for p,c in sorted(tree.items(), key=lambda x:(-x[1])):
    if c/N>=0.004: print(f'{100*c/N:5.1f}%  '+'  '*(len(p)-1)+p[-1])
