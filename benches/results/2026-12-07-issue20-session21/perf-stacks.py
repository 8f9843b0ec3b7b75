import sys,collections
# collapse perf script output into stacks (root first)
stacks=[];cur=[];comm=None
for line in open(sys.argv[1],errors='replace'):
    if not line.strip():
        if cur: stacks.append((comm,cur[::-1])); cur=[]
        continue
    if not line.startswith((' ','\t')):
        comm=line.split()[0]; continue
    parts=line.strip().split(None,1)
    cur.append(parts[1] if len(parts)>1 else '?')
if cur: stacks.append((comm,cur[::-1]))
import pickle; pickle.dump(stacks,open(sys.argv[2],'wb'))
print(len(stacks))
