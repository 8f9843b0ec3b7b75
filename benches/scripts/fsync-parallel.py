#!/usr/bin/env python3
"""Whether two fdatasyncs on two files overlap on this disk: the ledger's two flushes per
commit (RocksDB's WAL, which grows, then the anchor, written in place) one after the other,
against both at once on two threads:

    python3 benches/scripts/fsync-parallel.py [DIR]     (default /var/tmp; 2 rounds of 2,000)

DIR must be on the data dir's filesystem. Prints p50 and p99 in microseconds per kind and
round: two overwrites in a row, two overwrites at once, a growing file and an overwrite at
once, and the hand-off to the second thread with one overwrite (its own cost)."""
import os
import queue
import sys
import threading
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"


def open_file(name, preallocate):
    path = os.path.join(directory, f"fsync-parallel-{name}.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    if preallocate:
        os.write(fd, b"\0" * (4 << 20))
        os.fsync(fd)
    return fd, path


grow, grow_path = open_file("grow", False)
over, over_path = open_file("over", True)
over2, over2_path = open_file("over2", True)
requests, done = queue.SimpleQueue(), queue.SimpleQueue()


def worker():
    while True:
        fd, i = requests.get()
        if fd is None:
            return
        os.pwrite(fd, b"x" * 52, i * 52)
        os.fdatasync(fd)
        done.put(1)


threading.Thread(target=worker, daemon=True).start()
grown = 0


def run(kind, n=2000):
    global grown
    times = []
    for i in range(n):
        started = time.perf_counter()
        if kind == "two in a row":
            os.pwrite(over, b"x" * 52, i * 52)
            os.fdatasync(over)
            os.pwrite(over2, b"y" * 52, i * 52)
            os.fdatasync(over2)
        elif kind == "two at once":
            requests.put((over, i))
            os.pwrite(over2, b"y" * 52, i * 52)
            os.fdatasync(over2)
            done.get()
        elif kind == "grow + over at once":
            requests.put((over, i))
            os.pwrite(grow, b"y" * 300, grown * 300)
            grown += 1
            os.fdatasync(grow)
            done.get()
        elif kind == "hand-off + one":
            requests.put((over, i))
            done.get()
        times.append(time.perf_counter() - started)
    times.sort()
    print(f"{kind:20} p50 {times[n // 2] * 1e6:.0f} us  p99 {times[int(n * 0.99)] * 1e6:.0f} us", flush=True)


try:
    for _ in range(2):
        for kind in ("two in a row", "two at once", "grow + over at once", "hand-off + one"):
            run(kind)
finally:
    for fd, path in ((grow, grow_path), (over, over_path), (over2, over2_path)):
        os.close(fd)
        os.unlink(path)
