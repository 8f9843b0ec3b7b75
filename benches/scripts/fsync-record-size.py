#!/usr/bin/env python3
"""fdatasync of one record overwritten in place in a preallocated (written) file, by record size:
   python3 benches/scripts/fsync-record-size.py DIR
2,000 records per size, two rounds; "page-aligned-if-straddling" moves a record that would cross a
4 KiB page boundary to the next page (issue 20, seventh session: is the anchor's larger record
what makes its flush slower than the 52-byte one's?)."""
import os, time, sys, statistics
d = sys.argv[1]
path = os.path.join(d, "f")
N = 2000
def prealloc():
    with open(path, "wb") as f:
        f.write(b"\0" * (16 << 20)); f.flush(); os.fsync(f.fileno())
def run(size, align_page):
    prealloc()
    fd = os.open(path, os.O_WRONLY)
    off = 0; ts = []
    rec = b"x" * size
    for i in range(N):
        if align_page and (off // 4096) != ((off + size - 1) // 4096) and size <= 4096:
            off = (off // 4096 + 1) * 4096
        t = time.perf_counter_ns()
        os.pwrite(fd, rec, off); os.fdatasync(fd)
        ts.append((time.perf_counter_ns() - t) / 1000)
        off += (size + 7) // 8 * 8
    os.close(fd)
    ts.sort()
    return ts[len(ts)//2], ts[int(len(ts)*0.99)]
for rnd in range(2):
    for size, al in [(52, False), (1500, False), (1500, True), (3000, False), (3000, True), (8192, False)]:
        p50, p99 = run(size, al)
        print(f"round {rnd} size {size} page-aligned-if-straddling {al}: p50 {p50:.0f} us p99 {p99:.0f} us", flush=True)
