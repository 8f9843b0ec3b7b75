# callers.py SCRIPT THREADPREFIX WORD [DEPTH]: for the samples of threads named THREADPREFIX*, the
# outermost frame containing WORD and the DEPTH-1 frames above it.
import collections, sys
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../scripts'))
import perf_stacks
rows = perf_stacks.read(sys.argv[1])
th, word = sys.argv[2], sys.argv[3]
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 3
c = collections.Counter(); n = 0
for comm, _, fr in rows:
    if not comm.startswith(th): continue
    idx = [i for i, f in enumerate(fr) if word in f]
    if not idx: continue
    i = idx[-1]; n += 1
    c[' <- '.join(f[:70] for f in fr[i:i + depth])] += 1
print(n, 'samples')
for k, v in c.most_common(15): print(v, k)
