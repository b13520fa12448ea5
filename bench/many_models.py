#!/usr/bin/env python3
"""bench/many_models.py [BUILD_DIR]: on-demand loading and eviction under a
memory budget (issue 4), in one run. BUILD_DIR (default build/release) must
hold mmserve and bench/bench_ort_raw, built as Release.

1. Writes MODELS + 1 distinct offset models (y = x + k, FP32 [WIDTH], k = the
   model's index; scripts/make_example_models.py --many) into a temporary
   repository. A probe server (no budget) loads a few of them to read their
   real footprints from its log; then every config gets the same declared
   `mmserve { memory_footprint_bytes: F }`, and the budget is CAPACITY * F.
   The last model (the hot one) is also `pinned: true`.
2. bench_ort_raw --create-sessions: raw ONNX Runtime session creation of one
   of the models with the server's session options, on the server's CPU,
   before the server starts (the baseline for a miss).
3. mmserve --model-control-mode explicit --model-memory-budget CAPACITY*F
   --model-load-threads 1, on CPU 0 (the client on CPU 1). A seeded Zipf(s)
   trace of REQUESTS requests over the MODELS models (rank -> model shuffled
   with the seed) is sent at concurrency 1 over one keep-alive connection,
   binary tensors both ways. Before each request GET /v2/models/M/ready
   classifies it as a hit (200) or a miss; only the inference is timed. The
   first WARMUP requests are sent but not counted (the server's very first
   load pays ONNX Runtime's one-time set-up). Offline, on the same trace and
   window: Belady's optimal hit ratio for CAPACITY models, and plain LRU's.
4. The pinned hot model: HOT_REQUESTS sequential requests alone, and as many
   again while a second client process (its own connection) requests the
   unpinned models round-robin, so that a load and an eviction run all the
   time; in HOT_BLOCKS alternating blocks of each, so that the drift of a
   shared machine hits both alike.

Every answer is checked (HTTP 200 and y == x + k exactly); any error fails
the run (exit 1). Prints a markdown table with every figure and its target.

Env: BENCH_MODELS (1000), BENCH_CAPACITY (100), BENCH_WIDTH (128),
BENCH_REQUESTS (20000), BENCH_WARMUP (200), BENCH_ZIPF_S (1.0), BENCH_SEED (4),
BENCH_HOT_REQUESTS (6000), BENCH_HOT_BLOCKS (6), BENCH_CREATE_SESSIONS (300), BENCH_FOOTPRINT
(bytes; default: the probe's median, rounded up to KiB), BENCH_PIN (1),
BENCH_KEEP (1: keep the temporary folder with the repository and logs).
"""
import collections
import heapq
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
READY_RE = re.compile(r"model '(\w+)' version \d+ is READY \(([\d.]+) (B|KiB|MiB|GiB) footprint[;)]")


def env_int(name, default):
    return int(os.environ.get(name, default))


# ------------------------------------------------------------------ server


class Server:
    """One mmserve process with its log in a file; stopped with SIGTERM."""

    def __init__(self, build, repo, log_path, args, pin):
        cmd = [str(build / "mmserve"), "--model-repository", str(repo), "--http-port", "0",
               "--grpc-port", "0", "--metrics-port", "0", "--model-control-mode", "explicit"] + args
        if pin:
            cmd = ["taskset", "-c", "0"] + cmd
        self.cmd = cmd
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        self.port = None
        while time.monotonic() < deadline:
            text = log_path.read_text()
            m = re.search(r"HTTP server listening on [^:]+:(\d+)", text)
            if m and "mmserve is ready" in text:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                sys.exit(f"mmserve exited while starting:\n{text}")
            time.sleep(0.05)
        self.stop()
        sys.exit(f"mmserve was not ready within 60 s (log: {log_path})")

    def text(self):
        return self.log_path.read_text()

    def rss_bytes(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


# ------------------------------------------------------------------ client


class Client:
    """One keep-alive HTTP/1.1 connection; binary tensors both ways."""

    def __init__(self, port, width):
        self.port = port
        self.x = (np.arange(width, dtype=np.float32) * np.float32(0.5))
        header = json.dumps({
            "inputs": [{"name": "x", "shape": [width], "datatype": "FP32",
                        "parameters": {"binary_data_size": width * 4}}],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }, separators=(",", ":")).encode()
        self.body = header + self.x.tobytes()
        self.headers = {"Content-Type": "application/octet-stream",
                        "Inference-Header-Content-Length": str(len(header))}
        self.width = width
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def ready(self, name):
        self.conn.request("GET", f"/v2/models/{name}/ready")
        r = self.conn.getresponse()
        r.read()
        return r.status == 200

    def infer(self, name, k):
        """Returns (seconds, error or None); error names what was wrong."""
        try:
            t0 = time.perf_counter()
            self.conn.request("POST", f"/v2/models/{name}/infer", self.body, self.headers)
            r = self.conn.getresponse()
            data = r.read()
            elapsed = time.perf_counter() - t0
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            return 0.0, f"{name}: {type(e).__name__}: {e}"
        if r.status != 200:
            return elapsed, f"{name}: HTTP {r.status}: {data[:300]!r}"
        json_len = int(r.getheader("Inference-Header-Content-Length", "0"))
        y = np.frombuffer(data[json_len:], dtype=np.float32)
        if y.size != self.width or not np.array_equal(y, self.x + np.float32(k)):
            return elapsed, f"{name}: wrong output {y[:4]}... (expected x + {k})"
        return elapsed, None

    def post_json(self, path, body=b"{}"):
        self.conn.request("POST", path, body, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        return r.status, r.read()


def model_name(i):
    return f"m{i:04d}"


# ------------------------------------------------------------ cache models


def zipf_trace(count, requests, s, seed):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, count + 1, dtype=np.float64) ** s
    ranks = rng.choice(count, size=requests, p=weights / weights.sum())
    model_of_rank = rng.permutation(count)
    return model_of_rank[ranks].tolist()


def lru_hits(trace, capacity):
    cache = collections.OrderedDict()
    hits = []
    for item in trace:
        if item in cache:
            cache.move_to_end(item)
            hits.append(True)
        else:
            if len(cache) >= capacity:
                cache.popitem(last=False)
            cache[item] = True
            hits.append(False)
    return hits


def belady_hits(trace, capacity):
    """Belady's MIN: on a miss with a full cache, evict the resident item
    whose next use is farthest away (never used again counts as farthest)."""
    never = len(trace) + 1
    next_use = [never] * len(trace)
    seen = {}
    for i in range(len(trace) - 1, -1, -1):
        next_use[i] = seen.get(trace[i], never)
        seen[trace[i]] = i
    resident = {}  # item -> its next use
    heap = []      # (-next use, item), stale entries skipped
    hits = []
    for i, item in enumerate(trace):
        if item in resident:
            hits.append(True)
        else:
            hits.append(False)
            if len(resident) >= capacity:
                while True:
                    neg, victim = heapq.heappop(heap)
                    if resident.get(victim) == -neg:
                        break
                del resident[victim]
        resident[item] = next_use[i]
        heapq.heappush(heap, (-next_use[i], item))
    return hits


# ------------------------------------------------------------------ helpers


def pct(values, p):
    return float(np.percentile(np.asarray(values), p)) * 1e3 if values else float("nan")


def fmt_bytes(n):
    for unit in ("GiB", "MiB", "KiB"):
        if n >= UNITS[unit]:
            return f"{n / UNITS[unit]:.1f} {unit}"
    return f"{n} B"


def footprints(log_text):
    return [(m.group(1), float(m.group(2)) * UNITS[m.group(3)])
            for m in READY_RE.finditer(log_text)]


def cold_loop(port, width, models, go, idle, stop, done, out_q):
    """The second client (a process of its own, so no GIL is shared): while
    `go` is set, asks for the unpinned models round-robin, one request at a
    time; with fewer slots than models, every request is a miss (a load plus
    an eviction). While `go` is clear it sends nothing and sets `idle`.
    `done` counts its requests. Ends when `stop` is set."""
    client = Client(port, width)
    latencies, errors, first_error, i = [], 0, None, 0
    while not stop.is_set():
        if not go.is_set():
            idle.set()
            go.wait(0.02)
            continue
        k = models[i % len(models)]
        elapsed, err = client.infer(model_name(k), k)
        if err:
            errors += 1
            first_error = first_error or err
        else:
            latencies.append(elapsed)
        i += 1
        with done.get_lock():
            done.value += 1
    out_q.put((latencies, errors, first_error))


# -------------------------------------------------------------------- main


def main():
    build = ROOT / (sys.argv[1] if len(sys.argv) > 1 else "build/release")
    for binary in (build / "mmserve", build / "bench" / "bench_ort_raw"):
        if not binary.exists():
            sys.exit(f"{binary} is missing; build it first: cmake --build {build} "
                     "--target mmserve bench_ort_raw")
    count = env_int("BENCH_MODELS", 1000)
    capacity = env_int("BENCH_CAPACITY", 100)
    width = env_int("BENCH_WIDTH", 128)
    requests = env_int("BENCH_REQUESTS", 20000)
    warmup = env_int("BENCH_WARMUP", 200)
    zipf_s = float(os.environ.get("BENCH_ZIPF_S", "1.0"))
    seed = env_int("BENCH_SEED", 4)
    hot_requests = env_int("BENCH_HOT_REQUESTS", 6000)
    hot_blocks = env_int("BENCH_HOT_BLOCKS", 6)
    create_n = env_int("BENCH_CREATE_SESSIONS", 300)
    pin = os.environ.get("BENCH_PIN", "1") == "1" and os.cpu_count() >= 2
    keep = os.environ.get("BENCH_KEEP", "0") == "1"
    hot = count  # the extra model, index `count`, pinned
    started = time.monotonic()

    build_type = ""
    cache = build / "CMakeCache.txt"
    if cache.exists():
        m = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$", cache.read_text(), re.M)
        build_type = m.group(1) if m else ""
    if build_type != "Release":
        print(f"warning: {build} is a '{build_type}' build; figures are meant for Release",
              file=sys.stderr)
    if pin:
        os.sched_setaffinity(0, {1})

    work = Path(tempfile.mkdtemp(prefix="mmserve-many-"))
    repo = work / "models"
    servers = []
    failures = []  # what went wrong outside the trace (each also counted in other_errors)
    other_errors = 0
    try:
        # ---- 1. the repository, and the models' real footprint
        t0 = time.monotonic()
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example_models.py"), "--many",
                        str(repo), str(count + 1), "--width", str(width)],
                       check=True, stdout=subprocess.DEVNULL)
        gen_s = time.monotonic() - t0
        model_bytes = (repo / model_name(0) / "1" / "model.onnx").stat().st_size

        probe = Server(build, repo, work / "probe.log", ["--model-load-threads", "1"], pin)
        servers.append(probe)
        client = Client(probe.port, width)
        for i in range(12):
            _, err = client.infer(model_name(i), i)
            if err:
                other_errors += 1
                failures.append(f"probe: {err}")
        client.conn.close()
        probe_text = probe.text()
        probe.stop()
        measured = footprints(probe_text)
        if len(measured) < 2:
            sys.exit(f"probe: no footprints in the log:\n{probe_text}")
        first_footprint = measured[0][1]
        real = float(np.median([b for _, b in measured[1:]]))
        footprint = env_int("BENCH_FOOTPRINT", 0) or int(-(-real // 1024) * 1024)
        budget = capacity * footprint
        for i in range(count + 1):
            extra = " pinned: true" if i == hot else ""
            with open(repo / model_name(i) / "config.pbtxt", "a") as f:
                f.write(f"mmserve {{ memory_footprint_bytes: {footprint}{extra} }}\n")

        # ---- 2. raw session creation, on the server's CPU, nothing else running
        raw_cmd = [str(build / "bench" / "bench_ort_raw"), "--create-sessions", str(create_n),
                   str(repo / model_name(0) / "1" / "model.onnx")]
        if pin:
            raw_cmd = ["taskset", "-c", "0"] + raw_cmd
        raw_out = subprocess.run(raw_cmd, capture_output=True, text=True, check=True).stdout
        raw = {k: float(v) for k, v in re.findall(r"(p50_ms|p90_ms|p99_ms|max_ms)=([\d.]+)",
                                                  raw_out)}

        # ---- 3. the Zipf trace through the budget
        server = Server(build, repo, work / "mmserve.log",
                        ["--model-memory-budget", str(budget), "--model-load-threads", "1"], pin)
        servers.append(server)
        trace = zipf_trace(count, requests, zipf_s, seed)
        client = Client(server.port, width)
        hit_lat, miss_lat, server_hits = [], [], []
        errors, first_errors = 0, []
        rss_start = server.rss_bytes()
        t_trace = time.monotonic()
        rss_after_warmup = rss_start
        for i, k in enumerate(trace):
            if i == warmup:
                rss_after_warmup = server.rss_bytes()
            name = model_name(k)
            hit = client.ready(name)
            elapsed, err = client.infer(name, k)
            server_hits.append(hit)
            if err:
                errors += 1
                if len(first_errors) < 5:
                    first_errors.append(err)
                continue
            if i >= warmup:
                (hit_lat if hit else miss_lat).append(elapsed)
        trace_s = time.monotonic() - t_trace
        rss_end = server.rss_bytes()
        status, index_body = client.post_json("/v2/repository/index")
        index = json.loads(index_body) if status == 200 else []
        resident = sorted(e["name"] for e in index if e.get("state") == "READY")
        log_after_trace = server.text()
        loads_in_trace = len(footprints(log_after_trace))

        window = slice(warmup, None)
        counted = len(trace) - warmup
        hits_server = sum(server_hits[window])
        hits_belady = sum(belady_hits(trace, capacity)[window])
        hits_lru = sum(lru_hits(trace, capacity)[window])
        hit_ratio = hits_server / counted
        belady_ratio = hits_belady / counted
        lru_ratio = hits_lru / counted

        # ---- 4. the pinned hot model, alone and beside continuous loads
        hot_name = model_name(hot)
        for _ in range(101):  # the first loads it (a miss)
            _, err = client.infer(hot_name, hot)
            if err:
                other_errors += 1
                failures.append(f"hot model warm-up: {err}")

        # Alone and beside loads in alternating blocks, so that the drift of
        # this shared machine hits both alike.
        ctx = multiprocessing.get_context("fork")
        go, idle, stop, out_q = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
        done = ctx.Value("l", 0)
        cold = ctx.Process(target=cold_loop, args=(server.port, width, list(range(count)), go,
                                                   idle, stop, done, out_q))
        cold.start()
        hot_alone, hot_busy, errs = [], [], []
        hot_busy_s, loads_during = 0.0, 0
        block = max(1, hot_requests // hot_blocks)
        for b in range(2 * hot_blocks):
            busy = b % 2 == 1
            if busy:
                start_done = done.value
                loads_before = len(footprints(server.text()))
                go.set()
                while done.value < start_done + 2:  # loads are under way
                    time.sleep(0.001)
                t_hot = time.monotonic()
            lat = hot_busy if busy else hot_alone
            for _ in range(block):
                elapsed, err = client.infer(hot_name, hot)
                if err:
                    errs.append(err)
                else:
                    lat.append(elapsed)
            if busy:
                hot_busy_s += time.monotonic() - t_hot
            go.clear()  # pause the cold client; wait until its last request is answered
            idle.clear()
            if not idle.wait(120):
                sys.exit("the cold client did not pause")
            if busy:
                loads_during += len(footprints(server.text())) - loads_before
        other_errors += len(errs)
        failures += errs[:3]
        stop.set()
        cold_lat, cold_errors, cold_first = out_q.get(timeout=120)
        cold.join(60)
        other_errors += cold_errors
        if cold_errors:
            failures.append(f"cold client: {cold_errors} errors, first: {cold_first}")
        hot_still_ready = client.ready(hot_name)
        client.conn.close()
        final_log = server.text()
        rc = server.stop()
    finally:
        for s in servers:
            s.stop()
        if keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    # ---- report
    if errors:
        failures.append(f"trace: {errors} errors, first: {first_errors}")
    if not hot_still_ready:
        failures.append("the pinned hot model was not READY after the cold loads")
    if len(resident) > capacity:
        failures.append(f"{len(resident)} models READY after the trace, over capacity {capacity}")
    odd = [line for line in final_log.splitlines()
           if re.search(r"\] \[(warning|error|critical)\]", line)]
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, cwd=ROOT).stdout.strip()
    hits_p = (pct(hit_lat, 50), pct(hit_lat, 99))
    miss_p = (pct(miss_lat, 50), pct(miss_lat, 99))
    alone_p99, busy_p99 = pct(hot_alone, 99), pct(hot_busy, 99)
    miss_limit = raw["p50_ms"] + 5.0

    def met(ok):
        return "**met**" if ok else "**missed**"

    total_s = time.monotonic() - started
    print()
    print(f"Build {build} ({build_type}), git {git}{' (+ uncommitted changes)' if dirty else ''}. "
          f"{count} offset models (+1 hot), FP32 [{width}], model.onnx {fmt_bytes(model_bytes)}; "
          f"declared footprint F = {fmt_bytes(footprint)} ({footprint} B) each, budget "
          f"{capacity} × F = {budget} B; real footprint (probe, median of "
          f"{len(measured) - 1} loads) {fmt_bytes(real)}, the process's first load "
          f"{fmt_bytes(first_footprint)}. --model-load-threads 1, server "
          f"{'on CPU 0, clients on CPU 1' if pin else 'unpinned'}. Zipf s={zipf_s}, seed {seed}, "
          f"{requests} requests, first {warmup} not counted; binary tensors, one keep-alive "
          f"connection. ORT_DISABLE_TELEMETRY {os.environ.get('ORT_DISABLE_TELEMETRY', 'unset')}. "
          f"Trace {trace_s:.0f} s, whole run {total_s:.0f} s.")
    print()
    print("| figure | value | target | |")
    print("|---|---:|---|---|")
    print(f"| hit ratio, mmserve (ready = 200 before the request) | {hit_ratio:.4f} "
          f"({hits_server}/{counted}) | | |")
    print(f"| hit ratio, Belady's optimum, capacity {capacity}, same trace | {belady_ratio:.4f} "
          "| | |")
    print(f"| hit ratio, plain LRU simulated, same trace (reference) | {lru_ratio:.4f} | | |")
    print(f"| mmserve ÷ Belady | {hit_ratio / belady_ratio:.3f} | ≥ 0.90 | "
          f"{met(hit_ratio / belady_ratio >= 0.90)} |")
    print(f"| mmserve ÷ LRU simulation | {hit_ratio / lru_ratio:.3f} | | |")
    print(f"| hit latency p50 / p99 ms ({len(hit_lat)} hits) | {hits_p[0]:.3f} / "
          f"{hits_p[1]:.3f} | | |")
    print(f"| miss latency p50 / p99 ms ({len(miss_lat)} misses) | {miss_p[0]:.3f} / "
          f"{miss_p[1]:.3f} | | |")
    print(f"| raw ORT session creation p50 / p99 ms ({create_n} sessions, bench_ort_raw) | "
          f"{raw['p50_ms']:.3f} / {raw['p99_ms']:.3f} | | |")
    print(f"| miss p50 vs raw creation p50 + 5 ms | {miss_p[0]:.2f} vs {miss_limit:.2f} | ≤ | "
          f"{met(miss_p[0] <= miss_limit)} |")
    print(f"| miss p99 vs raw creation p50 + 5 ms | {miss_p[1]:.2f} vs {miss_limit:.2f} | ≤ | "
          f"{met(miss_p[1] <= miss_limit)} |")
    print(f"| miss p99 vs raw creation p99 + 5 ms (like for like, no target) | {miss_p[1]:.2f} vs "
          f"{raw['p99_ms'] + 5:.2f} | | |")
    print(f"| hot pinned model p99 ms alone ({len(hot_alone)} requests) | {alone_p99:.3f} | | |")
    print(f"| hot pinned model p99 ms beside continuous loads ({len(hot_busy)} requests, "
          f"{loads_during} loads in {hot_busy_s:.1f} s) | {busy_p99:.3f} | | |")
    print(f"| hot p99 with loads ÷ alone | {busy_p99 / alone_p99:.2f} | ≤ 2.0 | "
          f"{met(busy_p99 / alone_p99 <= 2.0)} |")
    print(f"| hot p50 / p90 ms alone | {pct(hot_alone, 50):.3f} / {pct(hot_alone, 90):.3f} | | |")
    print(f"| hot p50 / p90 ms beside loads | {pct(hot_busy, 50):.3f} / {pct(hot_busy, 90):.3f} "
          f"| | |")
    print(f"| cold client (every request a miss) p50 / p99 ms, {len(cold_lat)} requests | "
          f"{pct(cold_lat, 50):.2f} / {pct(cold_lat, 99):.2f} | | |")
    print(f"| errors (non-200 or y ≠ x + k), all phases | {errors + other_errors} | 0 | "
          f"{met(errors + other_errors == 0 and not failures)} |")
    print()
    print(f"Checks: {len(resident)} models READY after the trace (capacity {capacity}); "
          f"{loads_in_trace} loads logged during the trace for "
          f"{len(trace) - sum(server_hits)} misses seen; server RSS "
          f"{fmt_bytes(rss_start)} at start, {fmt_bytes(rss_after_warmup)} after the warm-up, "
          f"{fmt_bytes(rss_end)} after the trace; server exit code {rc}; "
          f"{len(odd)} warning/error lines in its log.")
    for line in odd[:10]:
        print(f"  log: {line}")
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
