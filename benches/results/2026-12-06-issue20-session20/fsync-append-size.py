#!/usr/bin/env python3
"""fdatasync after appending one record of each size to a preallocated (written) file, as the
anchor does: python3 fsync-append-size.py DIR [N]
Does a flush's time grow with the bytes it carries on this host? (issue 20, twentieth session:
a 64-event group's record is tens of KiB.) Sizes interleaved, N records each, two rounds."""
import os, time, sys
d = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
path = os.path.join(d, "f")
SIZES = [64, 1024, 4096, 16384, 32768, 49152, 65536, 98304, 131072]
def prealloc(total):
    with open(path, "wb") as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(total >> 20):
            f.write(chunk)
        f.flush(); os.fsync(f.fileno())
total = 1 << 30
for rnd in range(2):
    prealloc(total)
    fd = os.open(path, os.O_WRONLY)
    off = 0
    ts = {s: [] for s in SIZES}
    recs = {s: os.urandom(s) for s in SIZES}
    for i in range(N):
        for s in SIZES:
            if off + s > total:
                off = 0
            t = time.perf_counter_ns()
            os.pwrite(fd, recs[s], off); os.fdatasync(fd)
            ts[s].append((time.perf_counter_ns() - t) / 1000)
            off += s
    os.close(fd)
    for s in SIZES:
        v = sorted(ts[s])
        print(f"round {rnd} size {s:>7} B: p50 {v[len(v)//2]:8.1f} us  p90 {v[int(len(v)*0.9)]:8.1f} us  p99 {v[int(len(v)*0.99)]:8.1f} us", flush=True)
os.remove(path)
