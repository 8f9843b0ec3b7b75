import sys,collections,re,pickle
# parse perf script (comm,tid,ip,sym) into (tid, frames leaf-first)
rows=[];cur=[];tid=None
for line in open(sys.argv[1],errors='replace'):
    if not line.strip():
        if cur: rows.append((tid,cur)); cur=[]
        continue
    if not line.startswith((' ','\t')):
        tid=line.split()[1]; continue
    parts=line.strip().split(None,1)
    cur.append(re.sub(r'\+0x[0-9a-f]+$','',parts[1] if len(parts)>1 else '?'))
if cur: rows.append((tid,cur))
pickle.dump(rows,open(sys.argv[2],'wb'))
