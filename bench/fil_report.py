#!/usr/bin/env python3
"""bench/fil_report.py RESULTS.tsv [options]: the markdown report of bench/fil.sh's engine
benchmark (part 1): medians over the rounds, ratios against raw XGBoost, the targets.

RESULTS.tsv lines: ROUND SERIES KEY VALUE (SERIES raw, mmserve, triton, mem; KEY e.g.
rows_b1000, p50_b1, cpu_b1)."""
import argparse
import statistics
import sys
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    for flag in ("machine", "git", "build", "model", "seconds", "rounds", "elapsed", "triton",
                 "checks", "pinned", "raw_nice"):
        ap.add_argument(f"--{flag.replace('_', '-')}", default="")
    a = ap.parse_args()
    values = defaultdict(list)
    text = {}
    for line in open(a.results):
        rnd, series, key, value = line.rstrip("\n").split("\t")
        try:
            values[(series, key)].append(float(value))
        except ValueError:
            text[(series, key)] = value

    def med(series, key):
        v = values.get((series, key))
        return statistics.median(v) if v else None

    servers = [s for s in ("mmserve", "triton") if (s, "rows_b1000") in values]
    names = {"raw": "raw XGBoost C API, 1 thread", "mmserve": "mmserve (FIL backend)",
             "triton": f"Triton {a.triton} (Python backend + xgboost)".replace("  ", " ")}
    raw_rows, raw_p50 = med("raw", "rows_b1000"), med("raw", "p50_b1")
    checks = [ln.strip() for ln in open(a.checks)] if a.checks else []
    model = a.model.replace("engine ", "")
    fp, rss, load_s = med("mem", "footprint"), med("mem", "rss_growth"), med("mem", "load_s")
    out = [
        f"Git {a.git}, build {a.build}; {a.machine}; pinning {'on' if a.pinned == '1' else 'off'}. "
        f"XGBoost {text.get(('raw', 'xgboost'), '?')}. Model: XGBoost binary classifier, {model}; served with backend \"fil\", model_type "
        f"xgboost_ubj, predict_proba (output FP32 [2]). {a.seconds} s per point, {a.rounds} "
        f"rounds interleaved, medians; run {a.elapsed} s. mmserve with --execution-slots 1 "
        f"--http-threads 1; raw at nice {a.raw_nice or '?'} (the server's execution threads' "
        f"niceness); Triton with one instance. HTTP with Triton's binary tensor extension "
        f"both ways (wrk, 1 thread; -c4 at 1,000 rows, -c1 at 1 row).",
        "",
        "Answers checked first against xgboost's Python predict_proba: " + "; ".join(checks) + ".",
        "",
        "| figure | " + " | ".join(names[s] for s in ["raw"] + servers) + " | target (mmserve) | |",
        "|---|" + "---:|" * (1 + len(servers)) + "---|---|",
    ]

    def row(label, key, fmt, ratio=None, target="", ok=None):
        cells = []
        for s in ["raw"] + servers:
            v = med(s, key)
            if v is None:
                cells.append("–")
                continue
            cell = fmt.format(v)
            if s != "raw" and ratio == "x" and med("raw", key):
                cell += f" ({v / med('raw', key):.3f}×)"
            if s != "raw" and ratio == "+" and med("raw", key) is not None:
                cell += f" ({v - med('raw', key):+.0f})"
            cells.append(cell)
        verdict = "" if ok is None else ("**met**" if ok else "**missed**")
        out.append(f"| {label} | " + " | ".join(cells) + f" | {target} | {verdict} |")

    mm_rows, mm_p50 = med("mmserve", "rows_b1000"), med("mmserve", "p50_b1")
    row("rows/s, 1,000 rows per request", "rows_b1000", "{:.0f}", "x", "≥ 0.9× raw",
        (mm_rows / raw_rows >= 0.9) if mm_rows and raw_rows else None)
    for s in ["raw"] + servers:  # rows per CPU second: the wall clock without the neighbours
        cpu = med(s, "cpu_b1000")
        if cpu:
            values[(s, "rows_cpu_b1000")] = [1000 / cpu * 1e6]
    row("rows per CPU-second, 1,000 rows per request (the process's CPU time, all threads)",
        "rows_cpu_b1000", "{:.0f}", "x")
    row("p50 µs, 1,000 rows per request (c4 for the servers)", "p50_b1000", "{:.0f}")
    row("CPU µs per request (per call for raw), 1,000 rows", "cpu_b1000", "{:.0f}", "+")
    row("p50 µs, 1 row (c1)", "p50_b1", "{:.0f}", "+", "≤ raw + 40 µs",
        (mm_p50 <= raw_p50 + 40) if mm_p50 is not None and raw_p50 is not None else None)
    row("p99 µs, 1 row (c1)", "p99_b1", "{:.0f}", "+")
    row("requests/s, 1 row (c1)", "rps_b1", "{:.0f}")
    row("CPU µs per request (per call for raw), 1 row", "cpu_b1", "{:.0f}", "+")
    out.append("")
    if fp:
        out.append(f"The model's footprint as mmserve counts it (mmserve_model_memory_bytes, the "
                   f"FIL backend's figure from the library): {fp / 2**20:.1f} MiB; the server's RSS "
                   f"grew {rss / 2**20:.1f} MiB across its load (which also opened libxgboost: its "
                   f"code and one-time set-up); load {load_s * 1e3:.0f} ms.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
