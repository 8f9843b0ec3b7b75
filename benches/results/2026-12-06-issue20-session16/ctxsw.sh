#!/bin/bash
# ctxsw.sh BIN CLIENTS BATCH: context switches of the server's threads per request over 5 s mid-run
bin=$1 c=$2 b=$3
name=$(basename $bin)
/var/tmp/ab/ledger-bench --server-bin $bin --clients $c --batch $b --payload-bytes 387 --duration 25 --json > ctxsw-$name.json 2>/dev/null &
driver=$!
sleep 18
pid=$(pgrep -x "${name:0:15}" | head -1)
snap() { for t in /proc/$pid/task/*; do n=$(cat $t/comm); v=$(awk '/^voluntary_ctxt_switches/{print $2}' $t/status); nv=$(awk '/^nonvoluntary_ctxt_switches/{print $2}' $t/status); echo "$(basename $t) $n $v $nv"; done; }
snap > /tmp/cs1; sleep 5; snap > /tmp/cs2
wait $driver
python3 - /tmp/cs1 /tmp/cs2 ctxsw-$name.json $b <<'PY'
import sys,json,collections
a={l.split()[0]:l.split() for l in open(sys.argv[1])}; b={l.split()[0]:l.split() for l in open(sys.argv[2])}
d=json.load(open(sys.argv[3])); eps=d['appends']['eventsPerS']; reqs=eps*5/int(sys.argv[4])
agg=collections.defaultdict(lambda:[0,0])
for t,v in b.items():
    if t in a:
        agg[v[1]][0]+=int(v[2])-int(a[t][2]); agg[v[1]][1]+=int(v[3])-int(a[t][3])
tot=sum(x[0]+x[1] for x in agg.values())
print(f"events/s {eps:.0f} p50 {d['appends']['latencyUs']['p50']} us; switches per request: total {tot/reqs:.2f}; " + ", ".join(f"{k} {v[0]/reqs:.2f}+{v[1]/reqs:.2f}" for k,v in sorted(agg.items())))
PY
