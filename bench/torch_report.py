"""The markdown report of bench/pytorch.sh (its results.tsv: round, series,
model, key, value per line). Medians over the rounds; a ratio is the median of
the rounds' paired ratios (raw and server measured back to back)."""

import argparse
import collections
import statistics


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results")
    for flag in ("machine", "mlp-hidden", "git", "build", "torch", "cnn-size", "cnn-params",
                 "seconds", "rounds", "elapsed", "pinned"):
        p.add_argument("--" + flag, default="")
    a = p.parse_args()

    v = collections.defaultdict(dict)  # (series, model, key) -> {round: value}
    with open(a.results) as f:
        for line in f:
            rnd, series, model, key, value = line.rstrip("\n").split("\t")
            v[(series, model, key)][int(rnd)] = float(value)
    rounds = sorted({r for d in v.values() for r in d if r > 0})
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    get = lambda s, m, k: v.get((s, m, k), {})
    ok = lambda c: "**met**" if c else "**missed**"
    n = a.cnn_size
    out = []
    w = out.append
    placement = ("server and raw on CPU 0, wrk on the others" if a.pinned == "1"
                 else "unpinned (server, raw and wrk left to the kernel)")
    w(f"mmserve `--http-threads 1 --execution-slots 1`, one CPU instance per model, backend "
      f"defaults; raw: bench_torch_raw, one thread. {a.machine}; {placement}; git {a.git}, "
      f"{a.build}; torch {a.torch} (models), libtorch of the same wheel (server and raw); "
      f"mlp: 16 → {a.mlp_hidden} → {a.mlp_hidden} → 10; resnet18: "
      f"{int(float(a.cnn_params or 0)):,} parameters, input 3x{n}x{n}. "
      f"{a.rounds} interleaved rounds of {a.seconds} s per point, medians; {a.elapsed} s in all.")
    w("")

    # 1. Latency at concurrency 1.
    w("**Concurrency 1, batch 1, HTTP binary (p50)**")
    w("")
    w("| model | raw forward p50 µs | mmserve p50 µs | mmserve − raw µs | mmserve ÷ raw | target | "
      "| mmserve p99 µs | server's forward (compute infer) µs | queue + input + output µs | "
      "server CPU per request µs | raw CPU per call µs | CPU: mmserve − raw µs |")
    w("|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for m in ("mlp", "resnet18"):
        raw, srv = get("raw", m, "p50_b1"), get("http", m, "p50_c1")
        pairs = [(raw[r], srv[r]) for r in rounds if r in raw and r in srv]
        diff = med([s - r for r, s in pairs])
        ratio = med([s / r for r, s in pairs])
        if m == "mlp":
            target, met = "≤ raw + 40 µs", diff <= 40
        else:
            target, met = "≤ 1.10×", ratio <= 1.10
        scpu, rcpu = get("http", m, "cpu_us_c1"), get("raw", m, "cpu_b1")
        cpu_diff = med([scpu[r] - rcpu[r] for r in rounds if r in scpu and r in rcpu])
        other = med([sum(get("http", m, f"{k}_us_c1").get(r, 0) for k in ("queue", "input", "output"))
                     for r in rounds])
        w(f"| {m} | {med(list(raw.values())):,.1f} | {med(list(srv.values())):,.1f} | {diff:,.1f} | "
          f"{ratio:.3f}× | {target} | {ok(met)} | {med(list(get('http', m, 'p99_c1').values())):,.1f} | "
          f"{med(list(get('http', m, 'infer_us_c1').values())):,.1f} | {other:,.1f} | "
          f"{med(list(get('http', m, 'cpu_us_c1').values())):,.1f} | "
          f"{med(list(get('raw', m, 'cpu_b1').values())):,.1f} | {cpu_diff:,.1f} |")
    w("")

    # 2. Dynamic batching at concurrency 64.
    w("**Dynamic batching, concurrency 64, one row per request**")
    w("")
    w("| model | mmserve rows/s | mean batch | raw rows/s at it (interpolated) | mmserve ÷ raw | "
      "target | | mmserve p50 µs | server's forward per execution µs | raw forward at the batch "
      "(floor) µs | server CPU per request µs | raw CPU per row µs | CPU: raw per row ÷ "
      "mmserve per request |")
    w("|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for m in ("mlp", "resnet18"):
        mb = m + "_batched"
        srv, mean = get("http", mb, "rps_c64"), get("http", mb, "mean_batch_c64")
        lo, hi = get("raw", m, "batch_lo"), get("raw", m, "batch_hi")
        rlo, rhi = get("raw", m, "rows_lo"), get("raw", m, "rows_hi")
        plo = get("raw", m, "p50_lo")
        clo, chi, scpu = get("raw", m, "cpu_lo"), get("raw", m, "cpu_hi"), get("http", mb, "cpu_us_c64")
        raws, ratios, row_cpus, cpu_ratios = [], [], [], []
        for r in rounds:
            if r not in srv or r not in rlo:
                continue
            f = 0 if hi[r] == lo[r] else (mean[r] - lo[r]) / (hi[r] - lo[r])
            raw = rlo[r] + (rhi[r] - rlo[r]) * f
            raws.append(raw)
            ratios.append(srv[r] / raw)
            if r in clo and r in chi and r in scpu:
                row_cpu = clo[r] / lo[r] + (chi[r] / hi[r] - clo[r] / lo[r]) * f
                row_cpus.append(row_cpu)
                cpu_ratios.append(row_cpu / scpu[r])
        ratio = med(ratios)
        w(f"| {m} | {med(list(srv.values())):,.0f} | {med(list(mean.values())):.2f} | {med(raws):,.0f} | "
          f"{ratio:.3f}× | ≥ 0.85× | {ok(ratio >= 0.85)} | "
          f"{med(list(get('http', mb, 'p50_c64').values())):,.0f} | "
          f"{med(list(get('http', mb, 'infer_us_c64').values())):,.1f} | {med(list(plo.values())):,.1f} | "
          f"{med(list(scpu.values())):,.1f} | {med(row_cpus):,.1f} | {med(cpu_ratios):.3f}× |")
    ng, ngcpu = get("nginx", "mlp", "rps_c64"), get("nginx", "mlp", "cpu_us_c64")
    if ng:
        w("")
        w(f"The HTTP ceiling, same run: nginx (one worker) answering the same wrk requests with a "
          f"static body of mlp_batched's answer size: {med(list(ng.values())):,.0f} req/s at "
          f"concurrency 64, {med(list(ngcpu.values())):.1f} µs of CPU per request.")
    w("")

    # 3. Memory.
    w("**Memory: the counted footprint against the RSS growth of an explicit load**")
    w("")
    w("| model | RSS growth across its load | footprint counted (metrics) | footprint ÷ RSS growth | "
      "target | |")
    w("|---|---:|---:|---:|---|---|")
    mib = lambda b: f"{b / 2**20:,.1f} MiB"
    for m, note in (("mlp", " (first PyTorch model: plugin + libtorch)"), ("resnet18", "")):
        rss, fp = get("mem", m, "rss_growth").get(0), get("mem", m, "footprint").get(0)
        if rss is None or fp is None:
            continue
        ratio = fp / rss if rss > 0 else float("nan")
        target = "within ±20%" if m == "resnet18" else "(not a target)"
        met = ok(abs(ratio - 1) <= 0.2) if m == "resnet18" else ""
        w(f"| {m}{note} | {mib(rss)} | {mib(fp)} | {ratio:.3f}× | {target} | {met} |")
    fb = get("mem", "resnet18", "file_bytes").get(0)
    if fb:
        w("")
        w(f"(resnet18's model.pt is {mib(fb)}; its parameters as FP32 "
          f"{mib(4 * float(a.cnn_params or 0))}.)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
