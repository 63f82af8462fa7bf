"""Summarises the gateway's timing histograms from a `/metrics` scrape (Prometheus text).

For each series of `goodhart_gateway_phase_seconds`, `..._background_seconds`,
`..._runtime_lag_seconds` and `..._upstream_latency_seconds`: count, mean, and the upper
bucket bounds within which half, 99 % and 99.9 % of the observations fall.

Usage: python3 bench/metrics_summary.py metrics.txt [before.txt]
With a second scrape taken earlier, summarises only what was observed between the two.
"""
import re
import sys
from collections import defaultdict

WANTED = ("phase_seconds", "background_seconds", "runtime_lag_seconds", "upstream_latency_seconds")
LINE = re.compile(r'^goodhart_gateway_(\w+?)_(bucket|sum|count)(?:\{(.*)\})? (\S+)$')


def parse(path):
    series = defaultdict(lambda: {"buckets": {}, "sum": 0.0, "count": 0.0})
    for line in open(path):
        m = LINE.match(line.strip())
        if not m or m.group(1) not in WANTED:
            continue
        name, kind, labels, value = m.groups()
        labels = labels or ""
        le = re.search(r'le="([^"]+)"', labels)
        key = (name, ",".join(l for l in re.findall(r'\w+="[^"]*"', labels) if not l.startswith("le=")))
        if kind == "bucket" and le:
            series[key]["buckets"][float(le.group(1))] = float(value)
        else:
            series[key][kind] = float(value)
    return series


def bound(buckets, count, share):
    for le, cumulative in sorted(buckets.items()):
        if cumulative >= share * count:
            return "≤ %s" % ("inf" if le == float("inf") else "%g ms" % (le * 1000))
    return "?"


def main():
    now = parse(sys.argv[1])
    before = parse(sys.argv[2]) if len(sys.argv) > 2 else {}
    print("| series | count | mean | p50 | p99 | p99.9 |")
    print("| --- | ---: | ---: | --- | --- | --- |")
    for key in sorted(now):
        s, b = now[key], before.get(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
        count = s["count"] - b["count"]
        if count <= 0:
            continue
        buckets = {le: v - b["buckets"].get(le, 0.0) for le, v in s["buckets"].items()}
        mean = (s["sum"] - b["sum"]) / count * 1000
        name, labels = key
        print(f"| {name} {{{labels}}} | {count:.0f} | {mean:.3f} ms | {bound(buckets, count, 0.5)} "
              f"| {bound(buckets, count, 0.99)} | {bound(buckets, count, 0.999)} |")


main()
