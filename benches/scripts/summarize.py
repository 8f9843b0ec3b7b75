#!/usr/bin/env python3
"""Summarises a benches/scripts/run-all.sh result dir as Markdown tables with ratios."""
import json
import pathlib
import sys


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def main(out):
    out = pathlib.Path(out)
    print("## Durable signed appends: ledger (gRPC) vs PostgreSQL vs the physical limits\n")
    print((out / "machine.txt").read_text().strip().replace("\n", "  \n"))
    print()
    print("Each limit is followed by the ledger's figure as a share of it. Ed25519 alone is the faster of "
          "ed25519-dalek's verify_batch and the ledger's own batch check (limits.rs).\n")
    print("| clients | batch | ledger events/s | p50 / p99 ms | PostgreSQL events/s | p99 ms | ledger / PG "
          "| Ed25519 alone | BLAKE3 alone | RocksDB sync alone (group) | ledger / slower limit |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for clients, batch in [(1, 1), (16, 1), (64, 1), (1, 64), (16, 64), (64, 64)]:
        ledger = load(out / f"ledger-c{clients}-b{batch}.json")
        pg = load(out / f"pg-c{clients}-b{batch}.json")
        limits = load(out / f"limits-c{clients}-b{batch}.json")
        if not ledger:
            continue
        rate = ledger["appends"]["eventsPerS"]
        lat = ledger["appends"]["latencyUs"]
        pg_rate = pg["events_per_second"] if pg else float("nan")
        pg_p99 = pg["latency_us"]["p99"] / 1000 if pg else float("nan")
        slower = limits["slowerLimitPerS"] if limits else float("nan")
        print(f"| {clients} | {batch} | {rate:,.0f} | {lat['p50'] / 1000:.1f} / {lat['p99'] / 1000:.1f} "
              f"| {pg_rate:,.0f} | {pg_p99:.1f} | {rate / pg_rate:.1f}x "
              f"| {limits['ed25519PerS']:,.0f} ({rate / limits['ed25519PerS']:.0%}) "
              f"| {limits['blake3PerS']:,.0f} ({rate / limits['blake3PerS']:.1%}) "
              f"| {limits['rocksdbPerS']:,.0f} ({limits['group']}) ({rate / limits['rocksdbPerS']:.0%}) "
              f"| {rate / slower:.0%} |")
    scale = out / "scale.jsonl"
    if scale.exists():
        rows = [json.loads(line) for line in scale.read_text().splitlines() if line.strip()]
        points = [r for r in rows if "size" in r]
        print("\n## Scale curves\n")
        print("| entries | fill (library) events/s | gRPC append events/s | gRPC p99 ms | proof p50 / p99 us "
              "| point read p50 / p99 us | disk B/event | restart after kill -9 ms |")
        print("|---:|---:|---:|---:|---|---|---:|---:|")
        for p in points:
            print(f"| {p['size']:,} | {p['fillEventsPerSec']:,.0f} | {p['grpcAppendEventsPerSec']:,.0f} "
                  f"| {p['grpcAppendP99Us'] / 1000:.1f} | {p['proofUs']['p50']:.0f} / {p['proofUs']['p99']:.0f} "
                  f"| {p['readUs']['p50']:.0f} / {p['readUs']['p99']:.0f} | {p['diskBytesPerEvent']:.0f} "
                  f"| {p['restartToServingMs']:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
