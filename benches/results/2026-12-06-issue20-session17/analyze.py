import sys, re, collections
fn = sys.argv[1]; anchor = sys.argv[2]; depth = int(sys.argv[3]) if len(sys.argv) > 3 else 1
samples = []
cur = None
for line in open(fn, errors='replace'):
    if not line.strip():
        if cur: samples.append(cur)
        cur = None; continue
    if not line.startswith('\t') and not line.startswith(' ' * 8):
        if cur: samples.append(cur)
        cur = {'head': line.strip(), 'frames': []}; continue
    parts = line.strip().split(None, 1)
    if len(parts) == 2 and cur is not None:
        name = parts[1]
        name = re.sub(r'<[^<>]*>', '', name) if len(name) > 200 else name
        cur['frames'].append(name)
if cur: samples.append(cur)
tot = collections.Counter(); under = collections.Counter(); n_anchor = 0
for s in samples:
    fr = s['frames']  # leaf first
    tot[s['head'].split()[0]] += 1
    idx = [i for i, f in enumerate(fr) if f.split(' ')[0].startswith(anchor) or (' ' + anchor) in f]
    if not idx: continue
    i = idx[-1]  # outermost occurrence
    n_anchor += 1
    key = ' <- '.join(f.split(' (inlined)')[0][:70] for f in reversed(fr[max(0, i - depth):i]))
    under[key or '(self)'] += 1
print('samples', len(samples), 'by comm', dict(tot))
print('under', anchor, n_anchor)
for k, v in under.most_common(40):
    print(f'{v:6d} {100*v/max(n_anchor,1):5.1f}%  {k}')
