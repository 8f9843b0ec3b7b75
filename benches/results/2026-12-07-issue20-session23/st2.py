import sys,collections,re,pickle
# perf script (comm,pid,tid,ip,sym) -> rows (pid, tid, comm, frames leaf-first)
rows=[];cur=[];hdr=None
for line in open(sys.argv[1],errors='replace'):
    if not line.strip():
        if cur and hdr: rows.append(hdr+(cur,))
        cur=[]; continue
    if not line.startswith((' ','\t')):
        m=re.match(r'^(.*?)\s+(\d+)/(\d+)\s*$',line.rstrip())
        hdr=(m.group(2),m.group(3),m.group(1)) if m else None; continue
    parts=line.strip().split(None,1)
    cur.append(re.sub(r'\+0x[0-9a-f]+$','',parts[1] if len(parts)>1 else '?'))
if cur and hdr: rows.append(hdr+(cur,))
pickle.dump(rows,open(sys.argv[2],'wb'))
