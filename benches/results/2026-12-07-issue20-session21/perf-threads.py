import collections,sys
c=collections.Counter(); names={}
for line in open(sys.argv[1],errors='replace'):
    if line.strip() and not line.startswith((' ','\t')):
        p=line.split(); c[p[1]]+=1; names[p[1]]=p[0]
tot=sum(c.values())
print(f'# samples by thread (perf record -F 499 --call-graph dwarf), {tot} in all')
for k,v in c.most_common(8): print(f'{v:6d} {100*v/tot:5.1f}%  {names[k]} (tid {k})')
