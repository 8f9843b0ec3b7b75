import sys, re, collections
lines=open(sys.argv[1]).read().splitlines()[3:]
idle={0:[],1:[]}; waits=[]
for l in lines:
    p=l.split()
    if len(p)<6: continue
    try: t=float(p[0]); cpu=int(p[1].strip('[]')); w,d,r=float(p[-3]),float(p[-2]),float(p[-1])
    except: continue
    name=re.sub(r'\[.*','',p[2])
    start=t-r/1000
    if name=='<idle>': idle[cpu].append((start,t))
    elif d>0: waits.append((name,cpu,start-d/1000,start))
def overlap(iv,a,b):
    return sum(max(0,min(b,e)-max(a,s)) for s,e in iv)
tot=collections.Counter(); ov=collections.Counter()
for name,cpu,a,b in waits:
    tot[name]+=b-a; ov[name]+=overlap(idle[1-cpu],a,b)
for k in tot:
    if tot[k]>0.001: print(f"{k:20s} sched delay {tot[k]*1000:7.1f} ms, of which the other CPU idle {ov[k]*1000:7.1f} ms")
