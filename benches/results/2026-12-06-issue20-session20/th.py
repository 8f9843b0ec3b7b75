import sys, re, collections
lines=open(sys.argv[1]).read().splitlines()[3:]
delay=collections.Counter(); run=collections.Counter(); n=collections.Counter(); big=collections.Counter()
t0=t1=None
for l in lines:
    p=l.split()
    if len(p)<6: continue
    t=float(p[0]); 
    t0=t if t0 is None else t0; t1=t
    name=re.sub(r'\[.*','',p[2]); 
    try: w,d,r=float(p[-3]),float(p[-2]),float(p[-1])
    except: continue
    delay[name]+=d; run[name]+=r; n[name]+=1
    if d>0.2: big[name]+=1
print(f"window {t1-t0:.3f} s")
for k,_ in run.most_common(14):
    print(f"{k:22s} run {run[k]:8.1f} ms  sched-delay {delay[k]:8.1f} ms  switches {n[k]:6d}  delays>0.2ms {big[k]}")
