# schdelay.py TIMEHIST WAKER WAKEE_PREFIX: sch delay of WAKEE's runs after WAKER woke it
import re, sys, statistics
waker, wakee = sys.argv[2], sys.argv[3]
pending = {}
delays = []
for line in open(sys.argv[1]):
    m = re.match(r'\s*([\d.]+)\s+\[(\d+)\]\s+(\S+)\s+awakened: (\S+)', line)
    if m:
        if m.group(3).startswith(waker) and m.group(4).startswith(wakee):
            pending[m.group(4)] = float(m.group(1))
        continue
    m = re.match(r'\s*([\d.]+)\s+\[(\d+)\]\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)', line)
    if m and m.group(3) in pending:
        delays.append(float(m.group(5)))
        del pending[m.group(3)]
delays.sort()
n = len(delays)
print(n, 'wakes; sch delay ms p50 %.3f p90 %.3f p99 %.3f mean %.3f; >0.1 ms: %d' % (delays[n//2], delays[int(n*.9)], delays[int(n*.99)], statistics.mean(delays), sum(d > 0.1 for d in delays)))
