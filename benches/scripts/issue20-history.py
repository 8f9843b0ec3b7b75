#!/usr/bin/env python3
"""Every committed run of issue 20's command (`SCALE_SIZES=none benches/scripts/run-all.sh DIR`),
oldest first, from each run's `summary.md` under `benches/results/`: the ledger / PostgreSQL ratio
of each row (from the run's JSON files where both are there, else the summary's rounded figure),
the batch rows' share of the slower physical limit, and the machine's CPU.

    python3 benches/scripts/issue20-history.py [--since 2026-12-06T13] [--markdown]

`--since` takes any prefix of an ISO date and time (UTC). Runs whose summary has no comparison
table are skipped, and so are table lines that do not parse; a row missing from a run prints as
"-". The machine changed during the issue, so a ratio compares across runs, an absolute figure
only within one."""
import argparse
import glob
import json
import os
import re
import statistics

ROWS = ["1x1", "16x1", "64x1", "1x64", "16x64", "64x64"]
BATCH_ROWS = ["1x64", "16x64", "64x64"]


def rate(path, kind):
    """Events per second from one run's JSON (`ledger-bench --json` or `pg-baseline`'s), or None."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        return float(data["appends"]["eventsPerS"] if kind == "ledger" else data["events_per_second"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def runs(root):
    for path in sorted(glob.glob(os.path.join(root, "**", "summary.md"), recursive=True)):
        with open(path, encoding="utf-8") as file:
            text = file.read()
        if "ledger / PG" not in text:
            continue
        date = re.search(r"^date: (\S+)", text, re.M)
        commit = re.search(r"^commit: (\S+)", text, re.M)
        cpu = re.search(r"^cpu: (.+?)\s*$", text, re.M)
        ratio, share = {}, {}
        for line in text.splitlines():
            cells = [c.strip() for c in line.split("|")]
            # | clients | batch | ledger | p50 / p99 | PG | PG p99 | ledger / PG | Ed25519 | BLAKE3 | RocksDB | slower |
            if len(cells) >= 13 and cells[1].isdigit() and cells[2].isdigit():
                row = f"{cells[1]}x{cells[2]}"
                try:
                    ratio[row], share[row] = float(cells[7].rstrip("x")), int(cells[11].rstrip("%"))
                except ValueError:
                    continue
        # Two decimals where the run's JSON files give both rates (the summary rounds to one).
        for row in list(ratio):
            clients, batch = row.split("x")
            ledger_rate = rate(os.path.join(os.path.dirname(path), f"ledger-c{clients}-b{batch}.json"), "ledger")
            pg_rate = rate(os.path.join(os.path.dirname(path), f"pg-c{clients}-b{batch}.json"), "pg")
            if ledger_rate and pg_rate:
                ratio[row] = ledger_rate / pg_rate
        if ratio:
            yield {
                "date": date.group(1) if date else "?",
                "commit": commit.group(1) if commit else "?",
                "cpu": re.sub(r"\(R\)|Processor|x \d+$", "", cpu.group(1)).split() if cpu else ["?"],
                "dir": os.path.relpath(os.path.dirname(path), root),
                "ratio": ratio,
                "share": share,
            }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", "results"))
    parser.add_argument("--since", default="", help="only runs on or after this UTC date and time, any ISO prefix (2026-12-06, 2026-12-06T13)")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table and the spread of each row")
    args = parser.parse_args()
    found = sorted((r for r in runs(args.root) if r["date"] >= args.since), key=lambda r: r["date"])
    if not found:
        raise SystemExit("issue20-history: no run of the issue's command found under " + args.root)
    head = ["date (UTC)", "commit", "CPU"] + [r.replace("x", " × ") for r in ROWS] + ["batch rows / slower limit", "results"]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] * 3 + ["---:"] * len(ROWS) + ["---", "---"]) + "|")
    for run in found:
        cells = [run["date"][:16].replace("T", " "), run["commit"][:7], " ".join(run["cpu"][:2])]
        cells += [f"{run['ratio'][r]:.2f}×" if r in run["ratio"] else "-" for r in ROWS]
        cells.append(" / ".join(f"{run['share'][r]} %" if r in run["share"] else "-" for r in BATCH_ROWS))
        cells.append(f"`{run['dir']}/`")
        print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(cells))
    if args.markdown:
        print()
        print(f"Spread over these {len(found)} runs (lowest, median, highest):")
        print()
        for r in ROWS:
            values = [run["ratio"][r] for run in found if r in run["ratio"]]
            line = f"- {r.replace('x', ' × ')}: {min(values):.2f}×, {statistics.median(values):.2f}×, {max(values):.2f}×"
            if r in BATCH_ROWS:
                shares = [run["share"][r] for run in found if r in run["share"]]
                line += f" (of the slower limit: {min(shares)}–{max(shares)} %)"
            print(line)


if __name__ == "__main__":
    main()
