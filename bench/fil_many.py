#!/usr/bin/env python3
"""bench/fil_many.py [BUILD_DIR]: issue 21's multi-model scenario, thousands of small
XGBoost models behind one server with on-demand loading under a memory budget.
BUILD_DIR (default build/release) must hold mmserve and bench/bench_fil_zipf (Release).
bench/fil.sh runs it after the engine benchmark; it also runs alone.

1. The models (bench/fil_models.py many, cached in BENCH_FIL_CACHE): COUNT (5,000) binary
   classifiers of 100 trees (depth 6, 30 features), each a distinct function of the same
   tree structure (fil_models.py says how), backend "fil", model_type xgboost_ubj,
   predict_proba (output FP32 [2]); plus one more, `warm`.
2. A probe server (explicit mode, no budget) loads PROBE models on demand and reads their
   footprints as the server counts them (mmserve_model_memory_bytes: the FIL backend's
   figure from the library, not a heap delta) and their load times; they must all be equal
   (the same structure). The budget is CAPACITY_PERCENT (10) % of COUNT models: exactly
   round(COUNT * 10%) x F bytes.
3. The measured server: --model-control-mode explicit (a request for a model that is not
   loaded loads it: on-demand), --model-memory-budget that many bytes, the server's other
   settings at their defaults (BENCH_SERVER_FLAGS adds some). `warm` is requested once (the
   process's first tree model opens libxgboost) and unloaded again, so that the trace starts
   from an empty budget with the library loaded, as Belady's simulation does.
4. A seeded Zipf(S) trace over the COUNT models (rank -> model shuffled with the seed;
   many_models.py's generator), replayed in order by bench_fil_zipf (C++, one thread, epoll)
   over CONCURRENCY (16) keep-alive connections for SECONDS (60): binary tensors both ways,
   every answer checked against xgboost's own predict_proba of that model (1e-6 relative).
   Classification of each request, two ways (at concurrency 16 no single one is exact):
   - per request, a `GET /v2/models/NAME/ready` just before the inference (200: hit, else
     miss). It races: another connection's request may be loading the model (then this one
     waits for that load and is rightly a miss), or the model may be evicted between the
     probe and the inference (a miss counted as a hit). Latency percentiles use it; the
     probe is not timed, and not counted in req/s.
   - in all, the server's own count of loads that a request started
     (mmserve_model_on_demand_loads_total, summed over the models, from /metrics): the exact
     number of misses. The hit ratio is 1 - loads / requests.
   Offline, on the same trace prefix (the requests actually sent): Belady's optimum for
   the same capacity (evict the model used farthest in the future) and plain LRU.
5. Reported: req/s, p50/p99/p99.9 of hits and misses, the hit ratios, the server's peak
   RSS (VmHWM over its whole life) against the budget, the server's and the client's CPU.

Targets (issue 21): hit ratio >= 0.9x Belady's; miss p99 <= 20 ms; peak RSS <= budget + 15%.

Env: BENCH_MODELS (5000), BENCH_CAPACITY_PERCENT (10), BENCH_CONCURRENCY (16),
BENCH_SECONDS (60), BENCH_ZIPF_S (1.0), BENCH_SEED (21), BENCH_PROBE_MODELS (8),
BENCH_TRACE_LENGTH (3000000), BENCH_SERVER_FLAGS, BENCH_FIL_CACHE (the models' folder;
default ~/.cache/mmserve/bench-fil-many), BENCH_PYTHON (a Python with xgboost for
fil_models.py; default this one), BENCH_OUT (also write the report there), BENCH_KEEP (1:
keep the work folder), BENCH_SMOKE_ONNX (1: ONNX offset models instead, to test this
driver without the FIL backend; no answer check).
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from many_models import Server, belady_hits, fmt_bytes, lru_hits, zipf_trace  # noqa: E402


def env_int(name, default):
    return int(os.environ.get(name, default))


def http(port, method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def metrics_port(server):
    m = re.search(r"metrics at http://[^:]+:(\d+)/metrics", server.text())
    if not m:
        sys.exit("no metrics port in the server's log")
    return int(m.group(1))


def scrape(server):
    """{(family, model): value} for the per-model families, {family: value} for the others."""
    port = metrics_port(server)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as r:
        text = r.read().decode()
    per_model, plain = {}, {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"(\w+)(\{[^}]*\})?\s+(\S+)$", line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        mm = re.search(r'model="([^"]*)"', labels)
        if mm:
            key = (name, mm.group(1))
            per_model[key] = per_model.get(key, 0.0) + value
        else:
            plain[name] = plain.get(name, 0.0) + value
    return per_model, plain


def proc_status(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def pct(values, p):
    return float(np.percentile(values, p)) / 1e3 if len(values) else float("nan")


def models_fil(work, count, seed):
    cache = Path(os.environ.get("BENCH_FIL_CACHE", Path.home() / ".cache/mmserve/bench-fil-many"))
    python = os.environ.get("BENCH_PYTHON", sys.executable)
    subprocess.run([python, str(ROOT / "bench" / "fil_models.py"), "many", str(cache),
                    "--count", str(count), "--seed", str(seed)], check=True)
    info = json.loads((cache / "models.json").read_text())
    row = np.frombuffer((cache / "row.f32").read_bytes(), np.float32).reshape(1, -1)
    header = json.dumps({
        "inputs": [{"name": "input__0", "shape": list(row.shape), "datatype": "FP32",
                    "parameters": {"binary_data_size": row.nbytes}}],
        "outputs": [{"name": "output__0", "parameters": {"binary_data": True}}],
    }, separators=(",", ":")).encode()
    (work / "body.bin").write_bytes(header + row.tobytes())
    # The expected answers: model i at index i; warm (last) is not in the trace.
    desc = (f"{count} XGBoost binary classifiers (binary:logistic), {info['trees']} trees of "
            f"depth {info['depth']} ({info['nodes']} nodes), 30 features, UBJ "
            f"{fmt_bytes(info['ubj_bytes'])} each, xgboost {info['xgboost']}; "
            f"{info['distinct_answers']} distinct answers to the request's row "
            f"(p from {info['p_min']:.4f} to {info['p_max']:.4f})")
    return dict(repo=cache / "repo", name_format="c%04d", warm="warm", header_length=len(header),
                expected=cache / "expected.f32", desc=desc)


def models_onnx_smoke(work, count):
    repo = work / "onnx"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example_models.py"), "--many",
                    str(repo), str(count + 1), "--width", "30"], check=True,
                   stdout=subprocess.DEVNULL)
    x = np.arange(30, dtype=np.float32)
    header = json.dumps({
        "inputs": [{"name": "x", "shape": [30], "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
    }, separators=(",", ":")).encode()
    (work / "body.bin").write_bytes(header + x.tobytes())
    return dict(repo=repo, name_format="m%04d", warm=f"m{count:04d}", header_length=len(header),
                expected=None, desc=f"SMOKE TEST: {count} ONNX offset models (not FIL)")


def main():
    # SIGTERM (e.g. timeout) unwinds like an exception, so that the servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    build = ROOT / (sys.argv[1] if len(sys.argv) > 1 else "build/release")
    client_bin = build / "bench" / "bench_fil_zipf"
    for binary in (build / "mmserve", client_bin):
        if not binary.exists():
            sys.exit(f"{binary} is missing; build it: cmake --build {build} "
                     "--target mmserve bench_fil_zipf")
    count = env_int("BENCH_MODELS", 5000)
    percent = float(os.environ.get("BENCH_CAPACITY_PERCENT", "10"))
    concurrency = env_int("BENCH_CONCURRENCY", 16)
    seconds = float(os.environ.get("BENCH_SECONDS", "60"))
    zipf_s = float(os.environ.get("BENCH_ZIPF_S", "1.0"))
    seed = env_int("BENCH_SEED", 21)
    probe_n = env_int("BENCH_PROBE_MODELS", 8)
    trace_len = env_int("BENCH_TRACE_LENGTH", 3_000_000)
    server_flags = shlex.split(os.environ.get("BENCH_SERVER_FLAGS", ""))
    smoke = os.environ.get("BENCH_SMOKE_ONNX", "0") == "1"
    keep = os.environ.get("BENCH_KEEP", "0") == "1"
    started = time.monotonic()
    m = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$",
                  (build / "CMakeCache.txt").read_text() if (build / "CMakeCache.txt").exists()
                  else "", re.M)
    build_type = m.group(1) if m else "?"
    if build_type != "Release":
        print(f"warning: {build} is a '{build_type}' build; figures are meant for Release",
              file=sys.stderr)

    work = Path(tempfile.mkdtemp(prefix="mmserve-fil-many-"))
    servers = []
    failures = []
    try:
        t0 = time.monotonic()
        models = models_onnx_smoke(work, count) if smoke else models_fil(work, count, seed)
        gen_s = time.monotonic() - t0
        name = lambda i: models["name_format"] % i  # noqa: E731
        body = (work / "body.bin").read_bytes()
        hlen = str(models["header_length"])
        headers = {"Content-Type": "application/octet-stream",
                   "Inference-Header-Content-Length": hlen}

        # ---- 2. the footprint the server counts, and load times
        probe = Server(build, models["repo"], work / "probe.log", server_flags, False)
        servers.append(probe)
        probe_names = [models["warm"]] + [name(i) for i in range(probe_n)]
        for n in probe_names:
            status, data, _ = http(probe.port, "POST", f"/v2/models/{n}/infer", body, headers)
            if status != 200:
                sys.exit(f"probe: {n}: HTTP {status}: {data[:300]!r}\n{probe.text()[-3000:]}")
        per_model, _ = scrape(probe)
        probe_rss = probe.rss_bytes()
        probe.stop()
        fps = [per_model.get(("mmserve_model_memory_bytes", n)) for n in probe_names]
        loads_s = [per_model.get(("mmserve_model_load_duration_seconds", n)) for n in probe_names]
        if any(f is None for f in fps):
            sys.exit(f"probe: no mmserve_model_memory_bytes for some of {probe_names}: {fps}")
        footprint = int(max(fps[1:]))
        if not smoke and len(set(fps[1:])) != 1:
            failures.append(f"the models' footprints differ (same structure): {fps}")
        capacity = int(round(count * percent / 100))
        budget = capacity * footprint

        # ---- 3. the measured server
        server = Server(build, models["repo"], work / "mmserve.log",
                        ["--model-memory-budget", str(budget)] + server_flags, False)
        servers.append(server)
        rss_empty = server.rss_bytes()
        status, data, _ = http(server.port, "POST", f"/v2/models/{models['warm']}/infer", body,
                               headers)
        if status != 200:
            sys.exit(f"warm-up: HTTP {status}: {data[:300]!r}")
        status, data, _ = http(server.port, "POST",
                               f"/v2/repository/models/{models['warm']}/unload", b"{}",
                               {"Content-Type": "application/json"})
        if status != 200:
            sys.exit(f"unloading {models['warm']}: HTTP {status}: {data[:300]!r}")
        for _ in range(100):  # the unload ends asynchronously
            if http(server.port, "GET", f"/v2/models/{models['warm']}/ready")[0] != 200:
                break
            time.sleep(0.05)
        rss_start = server.rss_bytes()
        pm0, _ = scrape(server)

        # ---- 4. the trace
        trace = np.asarray(zipf_trace(count, trace_len, zipf_s, seed), dtype=np.int32)
        (work / "trace.i32").write_bytes(trace.tobytes())
        cmd = [str(client_bin), "--port", str(server.port), "--trace", str(work / "trace.i32"),
               "--body", str(work / "body.bin"), "--header-length", hlen,
               "--name-format", models["name_format"], "--concurrency", str(concurrency),
               "--seconds", str(seconds), "--probe", "1", "--out", str(work / "results.bin")]
        if models["expected"]:
            cmd += ["--expected", str(models["expected"])]
        cpu0 = cpu_seconds(server.proc.pid)
        out = subprocess.run(cmd, capture_output=True, text=True)
        cpu1 = cpu_seconds(server.proc.pid)
        if out.returncode != 0:
            sys.exit(f"bench_fil_zipf failed ({out.returncode}): {out.stderr}{out.stdout}")
        line = out.stdout.strip().splitlines()[-1]
        client = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
        rss_end = server.rss_bytes()
        peak_rss = proc_status(server.proc.pid, "VmHWM")
        pm1, plain1 = scrape(server)
        status, index_body, _ = http(server.port, "POST", "/v2/repository/index", b"{}",
                                     {"Content-Type": "application/json"})
        index = json.loads(index_body) if status == 200 else []
        ready = sum(1 for e in index if e.get("state") == "READY")
        odd = [ln for ln in server.text().splitlines()
               if re.search(r"\] \[(warning|error|critical)\]", ln)
               and "no --tenants file" not in ln]
        rc = server.stop()
    finally:
        for s in servers:
            s.stop()
        if keep:
            print(f"work folder kept: {work}", file=sys.stderr)

    rec = np.fromfile(work / "results.bin", dtype=np.dtype(
        [("model", "<u4"), ("probe", "u1"), ("ok", "u1"), ("status", "<u2"), ("lat", "<f4"),
         ("start", "<f8")]))
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    n = len(rec)
    errors = int(n - rec["ok"].sum())
    if errors:
        failures.append(f"{errors} answers were wrong or not 200; first: {client.get('first_error')}")
    if not np.array_equal(rec["model"], trace[:n]):
        failures.append("the requests sent are not the trace's prefix")

    def delta(family):
        return sum(v - pm0.get(k, 0.0) for k, v in pm1.items() if k[0] == family)

    loads = int(round(delta("mmserve_model_on_demand_loads_total")))
    all_loads = int(round(delta("mmserve_model_loads_total")))
    evictions = int(round(delta("mmserve_model_evictions_total")))
    # The load itself, without the wait for the loader: each model's last load
    # (mmserve_model_load_duration_seconds) among those the trace loaded.
    loaded = [m for (f, m), v in pm1.items()
              if f == "mmserve_model_on_demand_loads_total" and v > pm0.get((f, m), 0.0)]
    load_ms = np.array([pm1.get(("mmserve_model_load_duration_seconds", m), np.nan) * 1e3
                        for m in loaded])
    load_ms = load_ms[~np.isnan(load_ms)]
    hit = rec["probe"] == 1
    hit_lat = rec["lat"][hit & (rec["ok"] == 1)]
    miss_lat = rec["lat"][~hit & (rec["ok"] == 1)]
    hits_probe = int(hit.sum())
    hits_server = n - loads
    prefix = trace[:n].tolist()
    hits_belady = sum(belady_hits(prefix, capacity))
    hits_lru = sum(lru_hits(prefix, capacity))
    distinct = len(set(prefix))
    wall = float(client["seconds"])
    rps = n / wall
    client_cpu = float(client["client_cpu_s"])
    server_cpu = cpu1 - cpu0
    hr_server, hr_probe = hits_server / n, hits_probe / n
    hr_belady, hr_lru = hits_belady / n, hits_lru / n
    miss_p99 = pct(miss_lat, 99)
    rss_limit = budget * 1.15

    def met(ok):
        return "**met**" if ok else "**missed**"

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, cwd=ROOT).stdout.strip()
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                      if ln.startswith("model name")), "?")
    lines = [
        f"Build {build.name} ({build_type}), git {git}{' (+ uncommitted changes)' if dirty else ''}; "
        f"{os.cpu_count()} cores ({cpu_model}), load average "
        f"{open('/proc/loadavg').read().split()[0]} after. {models['desc']}. Footprint F = "
        f"{fmt_bytes(footprint)} ({footprint} B) per model as the server counts it "
        f"(mmserve_model_memory_bytes of {len(fps) - 1} probe loads: "
        f"{'all equal' if len(set(fps[1:])) == 1 else fps}); load time (the server's "
        f"mmserve_model_load_duration_seconds) {min(loads_s[1:]) * 1e3:.2f}–"
        f"{max(loads_s[1:]) * 1e3:.2f} ms. Budget {capacity} × F = {budget} B "
        f"({fmt_bytes(budget)}, {percent:g}% of the models). Zipf s={zipf_s}, seed {seed}, "
        f"{concurrency} connections for {seconds:g} s; {n} requests to {distinct} distinct "
        f"models; server flags: --model-control-mode explicit --model-memory-budget {budget}"
        f"{' ' + ' '.join(server_flags) if server_flags else ''}; models generated or found "
        f"in {gen_s:.0f} s; whole run {time.monotonic() - started:.0f} s.",
        "",
        "| figure | value | target | |",
        "|---|---:|---|---|",
        f"| requests per second (inferences; the ready probes not counted) | {rps:.0f} | | |",
        f"| hit ratio, mmserve: 1 − on-demand loads ÷ requests (/metrics, exact) | "
        f"{hr_server:.4f} ({loads} loads, {n} requests) | | |",
        f"| hit ratio, mmserve: ready probe before each request (racy at c{concurrency}) | "
        f"{hr_probe:.4f} ({n - hits_probe} probe misses) | | |",
        f"| hit ratio, Belady's optimum, capacity {capacity}, same {n} requests | "
        f"{hr_belady:.4f} | | |",
        f"| hit ratio, plain LRU simulated, same requests (reference) | {hr_lru:.4f} | | |",
        f"| mmserve ÷ Belady (server count) | {hr_server / hr_belady:.3f} | ≥ 0.90 | "
        f"{met(hr_server / hr_belady >= 0.9)} |",
        f"| mmserve ÷ Belady (probe) | {hr_probe / hr_belady:.3f} | | |",
        f"| mmserve ÷ LRU simulation (server count) | {hr_server / hr_lru:.3f} | | |",
        f"| hit latency p50 / p99 / p99.9 ms ({len(hit_lat)} probe hits) | "
        f"{pct(hit_lat, 50):.3f} / {pct(hit_lat, 99):.3f} / {pct(hit_lat, 99.9):.3f} | | |",
        f"| miss latency p50 / p99 / p99.9 ms ({len(miss_lat)} probe misses) | "
        f"{pct(miss_lat, 50):.3f} / {miss_p99:.3f} / {pct(miss_lat, 99.9):.3f} | | |",
        f"| miss p99 | {miss_p99:.2f} ms | ≤ 20 ms | {met(miss_p99 <= 20)} |",
        f"| the load alone, p50 / p99 / max ms (each model's last load in the trace, "
        f"mmserve_model_load_duration_seconds; {len(load_ms)} models) | "
        f"{np.percentile(load_ms, 50):.2f} / {np.percentile(load_ms, 99):.2f} / "
        f"{load_ms.max():.2f} | | |" if len(load_ms) else "| the load alone | – | | |",
        f"| all requests p50 / p99 / p99.9 ms | {pct(rec['lat'], 50):.3f} / "
        f"{pct(rec['lat'], 99):.3f} / {pct(rec['lat'], 99.9):.3f} | | |",
        f"| server peak RSS (VmHWM, its whole life) vs budget | {fmt_bytes(peak_rss)} vs "
        f"{fmt_bytes(budget)} ({peak_rss / budget:.3f}×) | ≤ budget + 15% "
        f"({fmt_bytes(rss_limit)}) | {met(peak_rss <= rss_limit)} |",
        f"| server peak RSS less its RSS when started (the models' and libxgboost's share) vs "
        f"budget | {fmt_bytes(peak_rss - rss_empty)} ({(peak_rss - rss_empty) / budget:.3f}×) | | |",
        f"| server RSS: started / after warm-up / after the trace | {fmt_bytes(rss_empty)} / "
        f"{fmt_bytes(rss_start)} / {fmt_bytes(rss_end)} | | |",
        f"| models READY after the trace; memory counted loaded (mmserve_memory_loaded_bytes) | "
        f"{ready}; {fmt_bytes(plain1.get('mmserve_memory_loaded_bytes', 0))} | ≤ {capacity} | "
        f"{met(ready <= capacity)} |",
        f"| server CPU per request (all threads) | {server_cpu / n * 1e6:.0f} µs "
        f"({server_cpu / wall:.2f} cores) | | |",
        f"| client CPU (bench_fil_zipf, probes included) | {client_cpu / n * 1e6:.1f} µs per "
        f"request ({client_cpu / wall:.2f} cores) | | |",
        f"| errors (non-200, or not xgboost's (1 − p, p) within 1e-6) | {errors} "
        f"({client.get('exact', '?')} answers bit-exact) | 0 | {met(errors == 0)} |",
        "",
        f"Checks: {all_loads} loads and {evictions} evictions during the trace "
        f"({loads} started by a request); the probe saw {n - hits_probe} misses for the "
        f"server's {loads} loads (a probe miss without a load of its own is a request that "
        f"waited for another connection's load of the same model); server exit code {rc}; "
        f"{len(odd)} warning/error lines in its log; probe server RSS after {len(fps)} loads "
        f"{fmt_bytes(probe_rss)}.",
    ]
    lines += [f"  log: {ln}" for ln in odd[:10]]
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    if os.environ.get("BENCH_OUT"):
        Path(os.environ["BENCH_OUT"]).write_text(report)
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
