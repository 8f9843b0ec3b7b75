#!/usr/bin/env python3
"""Checks a Release Ledger /metrics endpoint with the reference Prometheus parser.

Fetches the URL, requires the Prometheus text format content type, parses the body with
prometheus_client.parser.text_string_to_metric_families (any parse error fails), and checks:
  - each expected family exists with its type;
  - histograms are well formed: per label set, cumulative buckets that never decrease, a +Inf
    bucket equal to _count, and a _sum;
  - counters are finite and non-negative, the subscriber gauge is a non-negative integer;
  - ledger_append_requests has exactly the labels method and result, each from a fixed set,
    and ledger_append_duration_seconds only known methods (no label value comes from input);
  - every --require-result method:result (e.g. Append:ok) has a count above zero.

Prints one JSON summary line on stdout; exits 1 with "check_metrics: FAIL: ..." on stderr on any
failure, 2 on bad usage.

Usage: check_metrics.py --url http://HOST:PORT/metrics [--require-result METHOD:RESULT ...]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

# Family names as the parser reports them (a counter's family drops the _total suffix).
EXPECTED_FAMILIES = {
    "ledger_append_requests": "counter",
    "ledger_append_duration_seconds": "histogram",
    "ledger_commit_batch_entries": "histogram",
    "ledger_fsync_duration_seconds": "histogram",
    "ledger_entries_appended": "counter",
    "ledger_signature_batches_combined": "counter",
    "ledger_signatures_combined": "counter",
    "ledger_subscribers": "gauge",
}
METHODS = {"Append", "AppendBatch"}
# "ok" or a gRPC status code name in snake case (api/src/status.rs, result_label).
RESULTS = {
    "ok",
    "cancelled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
}
TEXT_FORMAT = "text/plain; version=0.0.4"
TIMEOUT_SECONDS = 10


class Failure(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status, content_type, body = response.status, response.headers.get("Content-Type", ""), response.read()
    except OSError as e:
        raise Failure(f"GET {url}: {e}") from None
    expect(status == 200, f"GET {url}: HTTP {status}")
    expect(content_type.replace(" ", "").startswith(TEXT_FORMAT.replace(" ", "")), f"GET {url}: Content-Type {content_type!r}, expected {TEXT_FORMAT!r}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Failure(f"GET {url}: body is not UTF-8: {e}") from None


def parse(text: str) -> dict:
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # The parser raises ValueError and friends; any of them is a failure.
        raise Failure(f"the exposition does not parse: {type(e).__name__}: {e}") from None
    by_name = {}
    for family in families:
        expect(family.name not in by_name, f"family {family.name} appears twice")
        by_name[family.name] = family
    return by_name


def label_key(labels: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "le"))


def check_histogram(family) -> int:
    """Returns the number of label sets."""
    series: dict[tuple, dict] = {}
    for sample in family.samples:
        entry = series.setdefault(label_key(sample.labels), {"buckets": [], "count": None, "sum": None})
        if sample.name == family.name + "_bucket":
            expect("le" in sample.labels, f"{family.name}: bucket without le: {sample}")
            entry["buckets"].append((float(sample.labels["le"]), sample.value))
        elif sample.name == family.name + "_count":
            entry["count"] = sample.value
        elif sample.name == family.name + "_sum":
            entry["sum"] = sample.value
        elif sample.name == family.name + "_created":
            pass
        else:
            raise Failure(f"{family.name}: unexpected sample {sample.name}")
    for labels, entry in series.items():
        where = f"{family.name}{dict(labels)}"
        expect(entry["count"] is not None and entry["sum"] is not None, f"{where}: missing _count or _sum")
        expect(math.isfinite(entry["sum"]) and entry["sum"] >= 0, f"{where}: _sum is {entry['sum']}")
        buckets = entry["buckets"]
        if not buckets:
            continue  # No observations yet: the Rust client omits the buckets of an empty histogram.
        bounds = [le for le, _ in buckets]
        expect(bounds == sorted(bounds) and len(set(bounds)) == len(bounds), f"{where}: bucket bounds out of order: {bounds}")
        expect(bounds[-1] == math.inf, f"{where}: no +Inf bucket")
        counts = [count for _, count in buckets]
        expect(all(a <= b for a, b in zip(counts, counts[1:])), f"{where}: bucket counts decrease: {counts}")
        expect(counts[-1] == entry["count"], f"{where}: +Inf bucket {counts[-1]} != _count {entry['count']}")
    return len(series)


def check(text: str, required_results: list[str]) -> dict:
    families = parse(text)
    for name, kind in EXPECTED_FAMILIES.items():
        expect(name in families, f"family {name} is missing (have: {', '.join(sorted(families)) or 'none'})")
        expect(families[name].type == kind, f"family {name} is a {families[name].type}, expected a {kind}")
    summary = {"families": {name: families[name].type for name in sorted(families)}}

    for family in families.values():
        if family.type == "histogram":
            check_histogram(family)
        elif family.type == "counter":
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                expect(math.isfinite(sample.value) and sample.value >= 0, f"{sample.name}{sample.labels} = {sample.value}")

    requests = {}
    for sample in families["ledger_append_requests"].samples:
        if sample.name.endswith("_created"):
            continue
        expect(sample.name == "ledger_append_requests_total", f"unexpected sample {sample.name}")
        expect(set(sample.labels) == {"method", "result"}, f"{sample.name} has labels {sorted(sample.labels)}, expected method and result")
        method, result = sample.labels["method"], sample.labels["result"]
        expect(method in METHODS, f"{sample.name}: method label {method!r} is not one of {sorted(METHODS)}")
        expect(result in RESULTS, f"{sample.name}: result label {result!r} is not ok or a gRPC code name")
        expect(sample.value == int(sample.value), f"{sample.name}{sample.labels} is not an integer: {sample.value}")
        requests[f"{method}:{result}"] = int(sample.value)
    summary["appendRequests"] = requests

    for sample in families["ledger_append_duration_seconds"].samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        expect(set(labels) == {"method"}, f"{sample.name} has labels {sorted(labels)}, expected method")
        expect(labels["method"] in METHODS, f"{sample.name}: method label {labels['method']!r} is not one of {sorted(METHODS)}")

    for required in required_results:
        method, _, result = required.partition(":")
        series = f'ledger_append_requests_total{{method="{method}",result="{result}"}}'
        expect(requests.get(required, 0) > 0, f"{series} is not above zero (have {requests})")

    appended = [s.value for s in families["ledger_entries_appended"].samples if s.name == "ledger_entries_appended_total"]
    expect(len(appended) == 1, f"ledger_entries_appended_total: {len(appended)} samples, expected 1")
    summary["entriesAppended"] = int(appended[0])
    subscribers = [s.value for s in families["ledger_subscribers"].samples]
    expect(len(subscribers) == 1 and subscribers[0] >= 0 and subscribers[0] == int(subscribers[0]), f"ledger_subscribers: {subscribers}")
    summary["subscribers"] = int(subscribers[0])
    batches = [s.value for s in families["ledger_commit_batch_entries"].samples if s.name.endswith("_count")]
    summary["commits"] = int(sum(batches))
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the /metrics URL, e.g. http://127.0.0.1:9464/metrics")
    parser.add_argument("--require-result", action="append", default=[], metavar="METHOD:RESULT", help="a method:result pair of ledger_append_requests_total that must be above zero (repeatable)")
    args = parser.parse_args()
    for required in args.require_result:
        method, _, result = required.partition(":")
        if method not in METHODS or result not in RESULTS:
            parser.error(f"--require-result {required!r}: expected METHOD:RESULT with METHOD in {sorted(METHODS)}")
    try:
        summary = check(fetch(args.url), args.require_result)
    except Failure as e:
        print(f"check_metrics: FAIL: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"ok": True, "url": args.url, **summary}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
