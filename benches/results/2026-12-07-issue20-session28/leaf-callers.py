# leaf-callers.py SCRIPT PID WORD [DEPTH]: samples of process PID whose leaf frame contains WORD, by thread
# and the DEPTH frames above the leaf ([unknown] frames skipped).
import collections, sys
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../scripts'))
import perf_stacks
path, pid, word = sys.argv[1], sys.argv[2], sys.argv[3]
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 4
rows = perf_stacks.read(path)
mine = [r for r in rows if r[1].startswith(pid + '/')]
hits = [r for r in mine if r[2] and word in r[2][0]]
print(len(hits), 'of', len(mine), 'samples have a leaf containing', word)
c = collections.Counter()
for comm, _, fr in hits:
    callers = [f for f in fr[1:] if not f.startswith('[unknown]')][:depth]
    c[(comm, ' <- '.join(x[:60] for x in callers))] += 1
for k, v in c.most_common(25): print(v, k)
