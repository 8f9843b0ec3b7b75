import sys,pickle,collections
rows=pickle.load(open(sys.argv[1],'rb')); pid=open(sys.argv[2]).read().strip(); comm=sys.argv[3]; n=int(sys.argv[4]) if len(sys.argv)>4 else 50
sel=[r[3] for r in rows if r[0]==pid and (comm=='all' or r[2]==comm)]
inc=collections.Counter(); slf=collections.Counter()
for f in sel:
    for x in set(f): inc[x]+=1
    if f: slf[f[0]]+=1
print(len(sel),'samples')
print('-- inclusive'); [print(f"{v:5d} {100*v/len(sel):5.1f}% {k[:140]}") for k,v in inc.most_common(n)]
print('-- self'); [print(f"{v:5d} {100*v/len(sel):5.1f}% {k[:140]}") for k,v in slf.most_common(25)]
