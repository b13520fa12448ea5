#!/usr/bin/env python3
"""Formats bench/run.sh's results as the markdown report of docs/benchmarks.md.

Input: a TSV with one row per measurement:
  kind server case_or_model concurrency_or_threads rps p50_us p99_us valid body_bytes
  cpu_us_per_req context_switches_per_req [round]
where kind is "http" (a wrk point) or "ort" (bench_ort_raw). A point measured
in several rounds is reported by its median figures; with a server
mmserve-before (BENCH_BEFORE), a section compares mmserve-default against it.
"""
import argparse
import csv
import statistics
import sys

P50_TARGET = 1.5  # mmserve p50 / nginx p50 at concurrency 1, add_sub
RPS_TARGET = 0.5  # mmserve req/s / nginx req/s at concurrency 32, add_sub
MMSERVE = ["mmserve-1x1", "mmserve-default"]
CASE_MODEL = {"add_sub_": "add_sub", "mlp_": "mlp_classifier"}


def model_of(case):
    return next(m for prefix, m in CASE_MODEL.items() if case.startswith(prefix))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    for flag in ["cores", "cpu", "load", "git", "build", "nginx", "wrk", "seconds", "elapsed",
                 "pinned", "hop", "before"]:
        ap.add_argument("--" + flag, default="?")
    a = ap.parse_args()

    http, ort, rounds = {}, {}, {}
    cases, high = [], 0
    with open(a.results) as f:
        for row in csv.reader(f, delimiter="\t"):
            kind, server, case, conc = row[0], row[1], row[2], int(row[3])
            fig = {"rps": float(row[4]), "p50": float(row[5]), "p99": float(row[6]),
                   "valid": row[7] == "1", "bytes": int(row[8]), "cpu": float(row[9]),
                   "ctx": float(row[10])}
            if kind == "ort":
                ort[(case, conc)] = fig
                continue
            rounds.setdefault((server, case, conc), []).append(fig)
            if case not in cases:
                cases.append(case)
            high = max(high, conc)
    for key, figs in rounds.items():  # the median of each figure over the rounds
        http[key] = {k: (all(f[k] for f in figs) if k == "valid" else
                         statistics.median(f[k] for f in figs)) for k in figs[0]}
    ort_threads = max((t for (_, t) in ort), default=1)

    def cell(server, case, conc, key, fmt="{:.0f}"):
        fig = http.get((server, case, conc))
        if fig is None:
            return "–"
        text = fmt.format(fig[key])
        return text if fig["valid"] else text + " (INVALID)"

    def ratio(server, case, conc, key):
        m, n = http.get((server, case, conc)), http.get(("nginx", case, conc))
        if not m or not n or n[key] == 0:
            return None
        return m[key] / n[key]

    def per_server(case, conc, key, fmt):
        return " / ".join(cell(s, case, conc, key, fmt).replace(" (INVALID)", "")
                          for s in ["nginx"] + MMSERVE)

    def fmt_ratio(r):
        return "–" if r is None else f"{r:.2f}×"

    out = []
    w = out.append
    w(f"Machine: {a.cores} cores, {a.cpu}; load average at the end {a.load}. "
      f"Build: {a.build}, git {a.git}. {a.nginx}, {a.wrk}. "
      f"{a.seconds} s per point, whole run {a.elapsed} s"
      f"{', servers pinned to CPU 0 and wrk to the others' if a.pinned == '1' else ', no CPU pinning'}.")
    w("")
    hop = dict(kv.split("=") for kv in a.hop.split()) if "=" in a.hop else {}
    if hop:
        w(f"Thread hand-off (`bench_thread_hop`, mutex + condition variable): "
          f"{float(hop.get('same_cpu_us', 0)):.1f} µs one way on one CPU, "
          f"{float(hop.get('other_cpu_us', 0)):.1f} µs across CPUs.")
        w("")
    w("**In-process ONNX Runtime** (`bench_ort_raw`, batch 1, the server's session options)")
    w("")
    w(f"| model | Run p50 µs | Run p99 µs | Run/s, 1 thread | Run/s, {ort_threads} threads |")
    w("|---|---:|---:|---:|---:|")
    for model in dict.fromkeys(m for (m, _) in ort):
        one, many = ort.get((model, 1)), ort.get((model, ort_threads))
        w(f"| {model} | {one['p50']:.2f} | {one['p99']:.2f} | {one['rps']:,.0f} | "
          f"{many['rps']:,.0f} |" if one and many else f"| {model} | – | – | – | – |")
    w("")
    w("**Concurrency 1** (`wrk -t1 -c1`): latency in µs, ratio = mmserve p50 / nginx p50")
    w("")
    w("| case | answer bytes | nginx p50 / p99 | mmserve-1x1 p50 / p99 | 1x1 ÷ nginx | "
      "mmserve-default p50 / p99 | default ÷ nginx | 1x1 − nginx p50 µs | 1x1 − ORT Run p50 µs | "
      "CPU µs/req nginx / 1x1 / default | context switches/req nginx / 1x1 / default |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        n = http.get(("nginx", case, 1))
        m = http.get(("mmserve-1x1", case, 1))
        o = ort.get((model_of(case), 1))
        over_nginx = f"{m['p50'] - n['p50']:.0f}" if m and n else "–"
        over_ort = f"{m['p50'] - o['p50']:.0f}" if m and o else "–"
        w(f"| {case} | {m['bytes'] if m else '–'} | "
          f"{cell('nginx', case, 1, 'p50')} / {cell('nginx', case, 1, 'p99')} | "
          f"{cell('mmserve-1x1', case, 1, 'p50')} / {cell('mmserve-1x1', case, 1, 'p99')} | "
          f"{fmt_ratio(ratio('mmserve-1x1', case, 1, 'p50'))} | "
          f"{cell('mmserve-default', case, 1, 'p50')} / {cell('mmserve-default', case, 1, 'p99')} | "
          f"{fmt_ratio(ratio('mmserve-default', case, 1, 'p50'))} | {over_nginx} | {over_ort} | "
          f"{per_server(case, 1, 'cpu', '{:.0f}')} | {per_server(case, 1, 'ctx', '{:.1f}')} |")
    w("")
    w(f"**Concurrency {high}** (`wrk -t2 -c{high}`): requests/s, ratio = mmserve / nginx; "
      "server CPU µs per request (all threads, user + system)")
    w("")
    w("| case | nginx req/s | mmserve-1x1 req/s | 1x1 ÷ nginx | mmserve-default req/s | "
      "default ÷ nginx | CPU µs/req nginx / 1x1 / default | "
      "context switches/req nginx / 1x1 / default | ORT in-process Run/s |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        o = ort.get((model_of(case), ort_threads))
        cpu = per_server(case, high, "cpu", "{:.0f}")
        ctx = per_server(case, high, "ctx", "{:.2f}")
        w(f"| {case} | {cell('nginx', case, high, 'rps', '{:,.0f}')} | "
          f"{cell('mmserve-1x1', case, high, 'rps', '{:,.0f}')} | "
          f"{fmt_ratio(ratio('mmserve-1x1', case, high, 'rps'))} | "
          f"{cell('mmserve-default', case, high, 'rps', '{:,.0f}')} | "
          f"{fmt_ratio(ratio('mmserve-default', case, high, 'rps'))} | {cpu} | {ctx} | "
          f"{o['rps'] if o else 0:,.0f} |")
    w("")
    w("**Targets** (add_sub; issue: p50 at concurrency 1 ≤ 1.5× nginx's, "
      f"throughput at concurrency {high} ≥ 50% of nginx's)")
    w("")
    w("| target | mmserve-1x1 | mmserve-default |")
    w("|---|---|---|")
    for case in [c for c in cases if c.startswith("add_sub")]:
        for label, conc, key, ok in [
                (f"{case}: p50 ≤ {P50_TARGET}× nginx at c1", 1, "p50", lambda r: r <= P50_TARGET),
                (f"{case}: req/s ≥ {RPS_TARGET:.0%} of nginx at c{high}", high, "rps",
                 lambda r: r >= RPS_TARGET)]:
            cells = []
            for s in MMSERVE:
                r = ratio(s, case, conc, key)
                valid = http.get((s, case, conc), {}).get("valid", False)
                cells.append("–" if r is None else
                             f"{r:.3f}× {'met' if ok(r) else '**missed**'}"
                             f"{'' if valid else ' (INVALID)'}")
            w(f"| {label} | {cells[0]} | {cells[1]} |")
    servers = {server for (server, _, _) in rounds}
    if "mmserve-before" in servers:
        compare(w, rounds, cases, high, "mmserve-before",
                f"**This build against `{a.before}`** (both with no thread flags")
    if "mmserve-noinline" in servers:
        compare(w, rounds, cases, high, "mmserve-noinline",
                "**The inline fast path's benefit**: this build against itself with "
                "`--inline-execution-max-us 0` (no request runs on an I/O thread")
    sys.stdout.write("\n".join(out) + "\n")


def compare(w, rounds, cases, high, other, title):
    """mmserve-default against `other` (an earlier build, the same build with
    other flags): the median of the rounds' paired ratios (each round measures
    both back to back), and the ratio of the best rounds."""
    w("")
    w(f"{title}; {len(next(iter(rounds.values())))} interleaved rounds): ratio = "
      f"mmserve-default / {other}, so ≥ 1 is better for req/s and ≤ 1 is better for p50")
    w("")
    w(f"| case | point | {other} | mmserve-default | median of paired ratios | best ÷ best | "
      f"CPU µs/req {other} / default |")
    w("|---|---|---:|---:|---:|---:|---:|")
    for case in cases:
        for conc, key, label, best in [(1, "p50", "p50 µs at c1", min),
                                       (high, "rps", f"req/s at c{high}", max)]:
            now = rounds.get(("mmserve-default", case, conc), [])
            old = rounds.get((other, case, conc), [])
            if not now or not old:
                continue
            paired = [n[key] / o[key] for n, o in zip(now, old) if o[key]]
            b_old, b_now = best(o[key] for o in old), best(n[key] for n in now)
            valid = all(f["valid"] for f in now + old)
            w(f"| {case} | {label} | {statistics.median(o[key] for o in old):,.0f} | "
              f"{statistics.median(n[key] for n in now):,.0f} | "
              f"{statistics.median(paired):.3f}× | {b_now / b_old:.3f}× | "
              f"{statistics.median(o['cpu'] for o in old):.1f} / "
              f"{statistics.median(n['cpu'] for n in now):.1f} |"
              f"{'' if valid else ' INVALID'}")


if __name__ == "__main__":
    main()
