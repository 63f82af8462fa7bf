#!/usr/bin/env python3
"""The table of bench/compare.sh: for each body and rate, each target's achieved rate, answers,
latency, latency added over the direct run (same body, same rate) and CPU.

    compare_table.py OUT_DIR "chat.json chat-stream.json" direct goodhart litellm

reads OUT_DIR/<target>--<body without .json>.json (loadtest.py's output). CPU per call is the
target's CPU time over the measured run (utime + stime from /proc, loadtest.py's
target_cpu_pct × the run's wall time) divided by the calls oha made in it; oha's achieved rps
is those calls over the same run, so CPU ms per call = target_cpu_pct × 10 / achieved rps.
"not sent" counts scheduled calls oha never sent because the target fell behind (open loop).
"""
import json
import sys


def fmt(x, digits=2):
    return "-" if x is None else f"{x:,.{digits}f}"


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, bodies, targets = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
    print("| body | rate | target | achieved rps | 2xx / scheduled | errors | not sent "
          "| p50 ms | p99 ms | added p50 ms | added p99 ms | CPU % of a core | CPU ms per call | machine busy % |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for body in bodies:
        stem = body.removesuffix(".json")
        rows = {}
        for target in targets:
            with open(f"{out}/{target}--{stem}.json") as f:
                rows[target] = {r["rate"]: r for r in json.load(f)["results"]}
        rates = sorted({rate for by_rate in rows.values() for rate in by_rate})
        for rate in rates:
            direct = rows.get("direct", {}).get(rate)
            for target in targets:
                r = rows[target].get(rate)
                if r is None:
                    continue
                errors = sum(r["errors"].values()) + r["requests"] - r["ok_2xx"]
                not_sent = max(0, r["scheduled"] - r["requests"] - sum(r["errors"].values()))
                added = lambda k: (None if target == "direct" or direct is None
                                   or r[k] is None or direct[k] is None else r[k] - direct[k])
                cpu = r.get("target_cpu_pct")
                per_call = None if cpu is None or not r["achieved_rps"] else cpu * 10 / r["achieved_rps"]
                saturated = " (saturated)" if r["saturated"] else ""
                print(f"| {body} | {rate:,} | {target} | {r['achieved_rps']:,.0f} "
                      f"| {r['ok_2xx']:,} / {r['scheduled']:,}{saturated} | {errors:,} | {not_sent:,} "
                      f"| {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {fmt(added('p50_ms'))} | {fmt(added('p99_ms'))} "
                      f"| {fmt(cpu, 1)} | {fmt(per_call, 3)} | {fmt(r['machine_busy_pct'], 1)} |")
    print()
    print("Saturated rows (fewer than 97 % of the scheduled calls made) are lower bounds on latency.")


if __name__ == "__main__":
    main()
