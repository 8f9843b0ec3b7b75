#!/usr/bin/env python3
"""What an fdatasync of a small record costs when the record extends the file (the anchor
before issue 20) and when it overwrites preallocated, written zeros (the anchor after):

    python3 benches/scripts/fsync-overwrite.py [DIR]     (default /var/tmp; 2 rounds of 2,000)

DIR must be on the data dir's filesystem. Prints p50 and p99 per kind and round."""
import os
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"


def run(name, preallocate, n=2000):
    path = os.path.join(directory, f"fsync-overwrite-{name}.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if preallocate:
            os.write(fd, b"\0" * (4 << 20))
            os.fsync(fd)
        times = []
        for i in range(n):
            started = time.perf_counter()
            os.pwrite(fd, b"x" * 52, i * 52)
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
        times.sort()
        print(f"{name:10} p50 {times[n // 2] * 1e6:.0f} us  p99 {times[int(n * 0.99)] * 1e6:.0f} us")
    finally:
        os.close(fd)
        os.unlink(path)


for _ in range(2):
    run("append", False)
    run("overwrite", True)
