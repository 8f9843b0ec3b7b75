# inclusive.py SCRIPT THREADPREFIX [PID]: for one thread's samples (perf script -F comm,pid,tid,ip,sym),
# the share of samples whose stack holds each function of the project, RocksDB or serde (generics stripped).
import collections, re, sys
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../scripts'))
import perf_stacks
path, prefix = sys.argv[1], sys.argv[2]
pid = sys.argv[3] if len(sys.argv) > 3 else None
rows = perf_stacks.read(path)
sel = [fr for comm, ids, fr in rows if comm.startswith(prefix) and (pid is None or ids.startswith(pid + '/'))]
print(len(sel), 'samples of', prefix)
c = collections.Counter()
for fr in sel:
    seen = set()
    for f in fr:
        g = re.sub(r'<.*?>', '', f)[:90]
        if g not in seen and any(w in f for w in ('projections::', 'rocksdb::', 'serde', 'ledger', 'alloc::fmt')):
            seen.add(g); c[g] += 1
for k, v in c.most_common(45): print(f'{v:5d} {100*v/len(sel):5.1f}% {k}')
