# abstat.py FILE...: for each audit-ab.sh output (lines "BUILD FILE WALL s wall USER s user SYS s sys RSS KB",
# the two builds alternately), each build's median wall and user seconds and how many pairs the second won
import statistics, sys
for f in sys.argv[1:]:
    by = {}
    for line in open(f):
        r = line.split()
        by.setdefault(r[0], []).append((float(r[2]), float(r[5])))
    a, b = list(by)
    pairs = list(zip(by[a], by[b]))
    won = sum(1 for x, y in pairs if y[0] < x[0])
    med = lambda rows, i: statistics.median(r[i] for r in rows)
    print(f"{f}: {a} wall {med(by[a], 0):.2f} s, user {med(by[a], 1):.2f} s | {b} wall {med(by[b], 0):.2f} s, user {med(by[b], 1):.2f} s | {b} faster in {won} of {len(pairs)} pairs")
