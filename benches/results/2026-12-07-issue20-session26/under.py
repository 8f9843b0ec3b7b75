# under.py SCRIPT CATEGORY_WORD DEPTH: self (leaf) frames of samples whose stack contains WORD, with DEPTH frames
import collections, re, sys
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../scripts'))
import perf_stacks
rows = [(comm, [re.sub(r'<[^<>]*(<[^<>]*>)*[^<>]*>', '', f)[:60] for f in fr]) for comm, _, fr in perf_stacks.read(sys.argv[1])]
word, depth = sys.argv[2], int(sys.argv[3])
excl = sys.argv[4].split(',') if len(sys.argv) > 4 else []
sel = [fr for _, fr in rows if any(word in f for f in fr) and not any(e in ' '.join(fr) for e in excl)]
print(len(sel), 'of', len(rows))
c = collections.Counter(' <- '.join(fr[:depth]) for fr in sel)
for k, v in c.most_common(30): print(f'{v:5d} {100*v/len(rows):5.1f}% {k}')
