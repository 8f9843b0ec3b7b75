#!/usr/bin/env python3
"""How fast a record overwritten in place in a preallocated (written) file becomes durable, by
the way it is written: pwrite + fdatasync (what the anchor does), pwritev2(RWF_DSYNC), an O_DSYNC
file, O_DIRECT whole 4 KiB blocks (with O_DSYNC, or followed by fdatasync), and 150 KB records
through the page cache or O_DIRECT. p50/p99 in us, 2,000 records (400 of 150 KB), two rounds:
   python3 benches/scripts/flush-modes.py DIR
(issue 20, eighth session: O_DIRECT was faster here but not in the server; BENCHMARKS.md)."""
import os, time, sys, mmap
d = sys.argv[1]; path = os.path.join(d, "f"); N = 2000; SIZE = 1500
def prealloc():
    with open(path, "wb") as f:
        f.write(b"\0" * (16 << 20)); f.flush(); os.fsync(f.fileno())
def stats(ts):
    ts.sort(); return f"p50 {ts[len(ts)//2]:.0f} us p99 {ts[int(len(ts)*0.99)]:.0f} us"
def buffered():
    fd = os.open(path, os.O_WRONLY); off = 0; ts = []; rec = b"x" * SIZE
    for _ in range(N):
        t = time.perf_counter_ns(); os.pwrite(fd, rec, off); os.fdatasync(fd); ts.append((time.perf_counter_ns() - t) / 1000); off += 1504
    os.close(fd); return ts
def rwf_dsync():
    fd = os.open(path, os.O_WRONLY); off = 0; ts = []; rec = b"x" * SIZE
    for _ in range(N):
        t = time.perf_counter_ns(); os.pwritev(fd, [rec], off, os.RWF_DSYNC); ts.append((time.perf_counter_ns() - t) / 1000); off += 1504
    os.close(fd); return ts
def odsync():
    fd = os.open(path, os.O_WRONLY | os.O_DSYNC); off = 0; ts = []; rec = b"x" * SIZE
    for _ in range(N):
        t = time.perf_counter_ns(); os.pwrite(fd, rec, off); ts.append((time.perf_counter_ns() - t) / 1000); off += 1504
    os.close(fd); return ts
def direct():
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC); ts = []
    buf = mmap.mmap(-1, 8192); off = 0
    for _ in range(N):
        # The 4 KiB blocks covering the record, rewritten whole from memory.
        start = off // 4096 * 4096; end = (off + SIZE + 4095) // 4096 * 4096
        buf[off - start: off - start + SIZE] = b"x" * SIZE
        t = time.perf_counter_ns(); os.pwritev(fd, [memoryview(buf)[: end - start]], start); ts.append((time.perf_counter_ns() - t) / 1000)
        off += 1504
        if off // 4096 != start // 4096:
            buf[:4096] = buf[4096:8192] if end - start > 4096 else b"\0" * 4096
    os.close(fd); return ts
def direct_fdatasync():
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT); ts = []
    buf = mmap.mmap(-1, 8192); off = 0
    for _ in range(N):
        start = off // 4096 * 4096; end = (off + SIZE + 4095) // 4096 * 4096
        buf[off - start: off - start + SIZE] = b"x" * SIZE
        t = time.perf_counter_ns(); os.pwritev(fd, [memoryview(buf)[: end - start]], start); os.fdatasync(fd); ts.append((time.perf_counter_ns() - t) / 1000)
        off += 1504
        if off // 4096 != start // 4096:
            buf[:4096] = buf[4096:8192] if end - start > 4096 else b"\0" * 4096
    os.close(fd); return ts
def big(flags, sync):
    def f():
        size = 150_000; n = 400
        fd = os.open(path, os.O_WRONLY | flags); ts = []
        buf = mmap.mmap(-1, 160 * 1024); off = 0
        for _ in range(n):
            start = off // 4096 * 4096; end = (off + size + 4095) // 4096 * 4096
            buf[off - start: off - start + size] = b"y" * size
            t = time.perf_counter_ns(); os.pwritev(fd, [memoryview(buf)[: end - start]], start)
            if sync: os.fdatasync(fd)
            ts.append((time.perf_counter_ns() - t) / 1000)
            off = (off + size + 7) // 8 * 8
            if off > (15 << 20): off = 0
        os.close(fd); return ts
    return f
for rnd in range(2):
    for name, f in [("pwrite+fdatasync", buffered), ("pwritev2 RWF_DSYNC", rwf_dsync), ("O_DSYNC pwrite", odsync), ("O_DIRECT|O_DSYNC 4K blocks", direct), ("O_DIRECT + fdatasync", direct_fdatasync), ("150 KB buffered+fdatasync", big(0, True)), ("150 KB O_DIRECT+fdatasync", big(os.O_DIRECT, True))]:
        prealloc(); print(f"round {rnd} {name}: {stats(f())}", flush=True)
