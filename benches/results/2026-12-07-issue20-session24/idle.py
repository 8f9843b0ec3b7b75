import collections,sys
iv={0:[],1:[]}
for l in open(sys.argv[1]):
    p=l.split()
    if len(p)<6: continue
    try: t=float(p[0]); cpu=int(p[1].strip('[]')); run=float(p[-1])/1000
    except: continue
    name=p[2]
    iv[cpu].append((t-run,t,name))
res=collections.Counter(); runt=collections.Counter()
for c in (0,1):
    for s,e,n in iv[c]: runt[n]+=(e-s)*1000
    o=1-c
    other=sorted(iv[o])
    for s,e,n in iv[c]:
        if n!='<idle>': continue
        for s2,e2,n2 in other:
            ov=min(e,e2)-max(s,s2)
            if ov>0: res[n2]+=ov*1000
print("during idle, the other cpu ran:")
for k,v in res.most_common(5): print(f"{v:8.1f} ms  {k}")
print("run time:")
for k,v in runt.most_common(6): print(f"{v:8.1f} ms  {k}")
