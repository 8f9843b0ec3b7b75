import sys,re,collections
fn=sys.argv[1]
samples=[];cur=None;head=None
for line in open(fn,errors='replace'):
    if not line.strip():
        if cur is not None: samples.append((head,cur))
        cur=None; continue
    if not line.startswith('\t'):
        if cur is not None: samples.append((head,cur))
        head=line.split()[0]; cur=[]; continue
    p=line.strip().split(None,1)
    if len(p)==2 and cur is not None: cur.append(p[1].replace(' (inlined)',''))
def cat(fr):
    j=' | '.join(fr)
    for k,pat in [('ed25519-batch','verify_batch_by_key'),('ed25519-single','verify_strict'),('speculate-other','speculate'),('check-other','prepare::'),
                  ('writer-stage','stage::'),('writer-commit','commit::'),('anchor','anchor::'),('rocksdb-write','rocksdb::DBImpl::Write'),
                  ('projections','projections::'),('compaction','Compaction'),('flush','FlushJob'),
                  ('h2/hyper','h2::'),('hyper','hyper::'),('prost/decode','prost::'),('tonic','tonic::'),('tokio','tokio::')]:
        if pat in j: return k
    return 'other:'+(re.sub(r'<.*','',fr[0])[:50] if fr else '?')
c=collections.Counter()
for h,fr in samples: c[cat(fr)]+=1
n=len(samples)
print('samples',n)
for k,v in c.most_common(40): print(f'{v:6d} {100*v/n:5.1f}% {k}')
