#!/usr/bin/env python3
"""bench/repository_scale.py [BINARY ...]: the model repository at 10,000
models (issue 21): scan, index, poll and one on-demand load, for each binary
given (default: build/release/mmserve), in one run, so that a before/after
pair is measured on the same machine under the same noise.

Models are the test tree's identity backend (tests/backends/identity, served
with --enable-test-backends): a config.pbtxt and a version folder with one
empty file each, so that what is measured is the repository and the
lifecycle, not a framework. For each binary:

1. start: a server in explicit mode over MODELS models, from spawn until
   /v2/health/ready answers 200 (the scan and registration of every model).
2. index: POST /v2/repository/index (explicit mode rescans the repository
   for it): the first call (which may set up a watch) apart, then the median
   of REPEAT more, and the response size.
3. poll: a server in poll mode (--repository-poll-secs POLL_SECS) over MODELS
   models, which loads every model at start (timed too). Then, for each case
   (no change, one config edited, one model added, one version folder
   added), the CPU time the process spends per poll cycle, measured over
   POLL_CYCLES cycles after the change was found (utime + stime from /proc,
   per elapsed poll interval); for binaries that log their polls ("poll:
   ..."), the wall time of the poll that found the change (with no change:
   the median poll). Each change is checked: exactly that model reloads.
4. on-demand load: explicit mode with --load-on-demand over SMALL models and
   over MODELS models: the first inference request of a model (a miss: the
   request waits for its load), median over LOADS distinct models, and the
   second request (a hit) for comparison. Then again with a memory budget
   that holds 10% of the models (each declares its footprint), filled first,
   so that every measured miss also evicts one.

5. with BENCH_TREE_MODEL (an XGBoost UBJSON file, BENCH_TREE_FEATURES
   features, 30 by default): the on-demand load of 4. again, without a
   budget, for FIL models (backend "fil"), each a hard link to that file,
   in repositories of SMALL and MODELS of them.

Prints a markdown table per binary. Env: BENCH_MODELS (10000), BENCH_SMALL
(10), BENCH_REPEAT (5), BENCH_POLL_SECS (1), BENCH_POLL_CYCLES (5),
BENCH_LOADS (30), BENCH_TREE_MODEL, BENCH_TREE_FEATURES (30), BENCH_KEEP (0:
1 keeps the temporary folder).
"""
import http.client
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mmserve_process import MmserveProcess

ROOT = Path(__file__).resolve().parents[1]
MODELS = int(os.environ.get("BENCH_MODELS", "10000"))
SMALL = int(os.environ.get("BENCH_SMALL", "10"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
POLL_SECS = float(os.environ.get("BENCH_POLL_SECS", "1"))
POLL_CYCLES = int(os.environ.get("BENCH_POLL_CYCLES", "5"))
LOADS = int(os.environ.get("BENCH_LOADS", "30"))

FOOTPRINT = 4096  # declared, so that a budget holds an exact number of models
CONFIG = """name: "{name}"
backend: "mmserve_test_identity"
input [ {{ name: "X" data_type: TYPE_FP32 dims: [ -1 ] }} ]
mmserve {{ memory_footprint_bytes: 4096 }}
"""


def model_name(i):
    return f"m{i:05d}"


def write_model(repo, name, version=1):
    d = repo / name
    (d / str(version)).mkdir(parents=True, exist_ok=True)
    (d / "config.pbtxt").write_text(CONFIG.format(name=name))
    (d / str(version) / "model.bin").write_bytes(b"")


def make_repo(path, count):
    path.mkdir(parents=True)
    for i in range(count):
        write_model(path, model_name(i))
    return path


TREE_CONFIG = """name: "{name}"
backend: "fil"
max_batch_size: 1024
input [ {{ name: "input__0" data_type: TYPE_FP32 dims: [ {features} ] }} ]
output [ {{ name: "output__0" data_type: TYPE_FP32 dims: [ 1 ] }} ]
parameters [ {{ key: "model_type" value: {{ string_value: "xgboost_ubj" }} }},
             {{ key: "output_class" value: {{ string_value: "false" }} }} ]
"""


def make_tree_repo(path, count, model_file, features):
    """`count` FIL models, each a hard link to one XGBoost UBJSON file."""
    path.mkdir(parents=True)
    for i in range(count):
        d = path / model_name(i)
        (d / "1").mkdir(parents=True)
        (d / "config.pbtxt").write_text(TREE_CONFIG.format(name=model_name(i),
                                                           features=features))
        os.link(model_file, d / "1" / "xgboost.ubj")
    return path


class Server(MmserveProcess):
    def __init__(self, binary, repo, *extra, log_level="info"):
        self.t0 = time.monotonic()
        super().__init__([binary, "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
                          "--log-level", log_level, "--enable-test-backends",
                          "--model-repository", repo, *extra], start_deadline_s=600)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def request(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def wait_ready(self):
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mmserve exited:\n" + "".join(self.log[-50:]))
            try:
                if self.request("GET", "/v2/health/ready")[0] == 200:
                    return time.monotonic() - self.t0
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
            time.sleep(0.01)

    def stop(self):
        super().stop(wait_s=120)


def infer_body(features=None):
    if features:  # a tree model's one row
        return json.dumps({"inputs": [{"name": "input__0", "datatype": "FP32",
                                       "shape": [1, features],
                                       "data": [0.1 * i for i in range(features)]}]})
    return json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1],
                                   "data": [1.5]}]})


def bench_start_index(binary, repo):
    s = Server(binary, repo, "--model-control-mode", "explicit")
    try:
        start = s.wait_ready()
        times, size = [], 0
        for _ in range(REPEAT + 1):
            t = time.perf_counter()
            status, body = s.request("POST", "/v2/repository/index", "{}")
            times.append(time.perf_counter() - t)
            assert status == 200, body
            size = len(body)
            assert len(json.loads(body)) == MODELS
        # The first may set up what the later ones use (a watch): apart.
        return start, times[0], statistics.median(times[1:]), size
    finally:
        s.stop()


POLL_RE = re.compile(r"poll: .* in ([\d.]+) ms")


def poll_cost(s, cycles):
    """CPU seconds per poll interval over `cycles` intervals, and the median
    logged poll wall time (ms) of the polls in that window (None if the binary
    does not log its polls)."""
    first = len(s.log)
    c0, t0 = s.cpu_s(), time.monotonic()
    time.sleep(cycles * POLL_SECS)
    c1, t1 = s.cpu_s(), time.monotonic()
    walls = [float(m.group(1)) for line in s.log[first:] if (m := POLL_RE.search(line))]
    return (c1 - c0) / ((t1 - t0) / POLL_SECS), (statistics.median(walls) if walls else None)


def change_poll_ms(s, first):
    """The logged wall time (ms) of the poll that found the change made after
    log line `first`; None if the binary does not log its polls."""
    for line in s.log[first:]:
        m = POLL_RE.search(line)
        if m and "0 to load, 0 to unload" not in line:
            return float(m.group(1))
    return None


def bench_poll(binary, repo):
    # Debug: binaries that log every poll say how long each took.
    s = Server(binary, repo, "--model-control-mode", "poll", "--repository-poll-secs",
               str(POLL_SECS), log_level="debug")
    out = {}
    try:
        out["start (loads every model)"] = (s.wait_ready(), None)
        # Let the first polls after start pass (one may have begun during the loads).
        time.sleep(2 * POLL_SECS)
        out["poll, nothing changed"] = poll_cost(s, POLL_CYCLES)

        changed = "changed on disk: loading"
        name = model_name(MODELS // 2)
        before = s.count(changed)
        cfg = repo / name / "config.pbtxt"
        first = len(s.log)
        cfg.write_text(cfg.read_text() + "# edited\n")
        s.wait_log(f"model '{name}' changed on disk", 1)
        assert s.count(changed) == before + 1, "only the edited model reloads"
        out["poll, one config edited"] = poll_cost(s, POLL_CYCLES)[0], change_poll_ms(s, first)

        added = "added_model"
        first = len(s.log)
        write_model(repo, added)
        s.wait_log(f"model '{added}' version 1 is READY")
        assert s.count(changed) == before + 2, "only the added model loads"
        out["poll, one model added"] = poll_cost(s, POLL_CYCLES)[0], change_poll_ms(s, first)

        name2 = model_name(MODELS // 3)
        first = len(s.log)
        write_model(repo, name2, version=2)
        s.wait_log(f"model '{name2}' version 2 is READY")
        assert s.count(changed) == before + 3, "only the model with a new version reloads"
        out["poll, one version added"] = poll_cost(s, POLL_CYCLES)[0], change_poll_ms(s, first)
        shutil.rmtree(repo / added)
        (repo / name2 / "2" / "model.bin").unlink()
        (repo / name2 / "2").rmdir()
        cfg.write_text(CONFIG.format(name=model_name(MODELS // 2)))
        return out
    finally:
        s.stop()


def bench_on_demand(binary, repo, count, budget=None, features=None):
    extra = ["--model-memory-budget", str(budget)] if budget else []
    s = Server(binary, repo, "--model-control-mode", "explicit", "--load-on-demand", *extra)
    try:
        s.wait_ready()
        miss, hit = [], []
        body = infer_body(features)
        first = 0
        if budget:  # fill the budget first, so that each measured miss evicts
            first = budget // FOOTPRINT
            for i in range(first):
                status, reply = s.request("POST", f"/v2/models/{model_name(i)}/infer", body)
                assert status == 200, reply
        step = max(1, (count - first) // LOADS)
        for i in range(first, count, step)[:LOADS]:
            path = f"/v2/models/{model_name(i)}/infer"
            t = time.perf_counter()
            status, reply = s.request("POST", path, body)
            miss.append(time.perf_counter() - t)
            assert status == 200, reply
            t = time.perf_counter()
            status, reply = s.request("POST", path, body)
            hit.append(time.perf_counter() - t)
            assert status == 200, reply
        return statistics.median(miss), statistics.median(hit)
    except Exception:
        print(f"failed; server exit code {s.proc.poll()}; its log ends:\n" +
              "".join(s.log[-20:]), file=sys.stderr)
        raise
    finally:
        s.stop()


def main():
    binaries = [Path(b) for b in sys.argv[1:]] or [ROOT / "build" / "release" / "mmserve"]
    tmp = Path(tempfile.mkdtemp(prefix="repository_scale_"))
    try:
        t = time.perf_counter()
        big = make_repo(tmp / "big", MODELS)
        small = make_repo(tmp / "small", SMALL)
        tree = os.environ.get("BENCH_TREE_MODEL")
        features = int(os.environ.get("BENCH_TREE_FEATURES", "30"))
        if tree:
            big_trees = make_tree_repo(tmp / "big_trees", MODELS, tree, features)
            small_trees = make_tree_repo(tmp / "small_trees", SMALL, tree, features)
        print(f"wrote {MODELS} + {SMALL} identity models in {time.perf_counter() - t:.1f} s "
              f"({os.cpu_count()} CPUs; {os.uname().release})\n")
        for binary in binaries:
            start, first_index_s, index_s, index_size = bench_start_index(binary, big)
            polls = bench_poll(binary, big)
            miss_small, hit_small = bench_on_demand(binary, small, SMALL)
            miss_big, hit_big = bench_on_demand(binary, big, MODELS)
            # A budget of 10% of the models: every measured miss evicts one.
            evict_small, _ = bench_on_demand(binary, small, SMALL, FOOTPRINT * max(1, SMALL // 10))
            evict_big, _ = bench_on_demand(binary, big, MODELS, FOOTPRINT * (MODELS // 10))
            print(f"### {binary}\n")
            print("| figure | value |\n|---|---|")
            print(f"| start, explicit mode, {MODELS} models (spawn to ready) | {start:.2f} s |")
            print(f"| POST /v2/repository/index (rescans), the first | "
                  f"{first_index_s * 1e3:.1f} ms |")
            print(f"| POST /v2/repository/index (rescans), median of the next {REPEAT} | "
                  f"{index_s * 1e3:.1f} ms, {index_size / 1e6:.2f} MB |")
            for case, (value, wall) in polls.items():
                if case.startswith("start"):
                    print(f"| {case}, {MODELS} models | {value:.2f} s |")
                else:
                    shown = f"{value * 1e3:.1f} ms CPU per poll"
                    if wall is not None:
                        shown += f", {wall:.2f} ms wall (logged)"
                    print(f"| {case} | {shown} |")
            print(f"| on-demand load (first request), {SMALL} models | {miss_small * 1e3:.2f} ms "
                  f"(hit {hit_small * 1e3:.2f} ms) |")
            print(f"| on-demand load (first request), {MODELS} models | {miss_big * 1e3:.2f} ms "
                  f"(hit {hit_big * 1e3:.2f} ms) |")
            print(f"| on-demand load evicting one (budget: 10% of the models), {SMALL} models | "
                  f"{evict_small * 1e3:.2f} ms |")
            print(f"| on-demand load evicting one (budget: 10% of the models), {MODELS} models | "
                  f"{evict_big * 1e3:.2f} ms |")
            if tree:
                for label, repo, count in (("", small_trees, SMALL), ("", big_trees, MODELS)):
                    miss, hit = bench_on_demand(binary, repo, count, features=features)
                    print(f"| on-demand load of a tree model ({Path(tree).name}), {count} models "
                          f"| {miss * 1e3:.2f} ms (hit {hit * 1e3:.2f} ms) |")
            print()
            sys.stdout.flush()
    finally:
        if os.environ.get("BENCH_KEEP") == "1":
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
