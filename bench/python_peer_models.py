#!/usr/bin/env python3
"""Triton's tritonserver as the oracle for mmserve's decoupled and BLS Python
models: a decoupled token-streaming model (examples/models/token_stream) and
a BLS pre-processing model calling the ONNX mlp_classifier
(bench/peer_models/). Not part of `make test`.

  .venv/bin/python bench/python_peer_models.py [--seconds S] [--pin CPUS] [--no-bench]
  .venv/bin/python bench/python_peer_models.py --server HTTP GRPC   # checks only

1. Check: serves bench/peer_models/ from tritonserver (PyPI nvidia-pytriton,
   installed by scripts/install-peers.sh) and checks, through tritonclient and
   raw HTTP, what Triton answers:
   - token_stream over gRPC ModelStreamInfer: one response per token, in
     order, then an empty final response (triton_final_response);
   - token_stream over HTTP generate_stream (server-sent events), the same;
   - token_stream over plain ModelInfer: refused (decoupled model);
   - mlp_preprocess_bls: equal to preprocess() + a direct mlp_classifier call;
     a wrong input shape is refused.
2. Bench (unless --no-bench): the cost of a BLS call against a direct client
   call to mlp_classifier on Triton, HTTP and gRPC, batch 1: p50 at
   concurrency 1 and req/s at concurrency 32, S seconds per point, with
   perf_analyzer (scripts/install-deps.sh part 4; pinned to the CPUs
   tritonserver is not on) or, where it is absent, p50 only from a
   tritonclient loop. The difference is the BLS hop plus the pre-processing's
   few numpy operations. mmserve's side: bench/bls_cost.py.
3. --server HTTP GRPC: only the checks of 1., against a server already
   running (mmserve, once it serves decoupled Python models and BLS).

Triton's pieces come from the variables scripts/install-peers.sh prints on its
last line (TRITON_BIN TRITON_LIBS TRITON_BACKENDS TRITON_SITE); when they are
not set this script runs it, or, where it is absent, takes them from the
venv it installs (~/.cache/mmserve/pytriton-0.7.0-venv). The pytriton wheel
has no onnxruntime backend: mlp_classifier runs on Triton as a Python model
over onnxruntime's Python API (bench/peer_models/mlp_classifier, the same
model.onnx); this script pip-installs onnxruntime into Triton's venv once.
Exit status 1 on any wrong answer.
"""
import argparse
import json
import os
import pathlib
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ROOT = pathlib.Path(__file__).resolve().parent.parent
PEER_MODELS = ROOT / "bench" / "peer_models"
MEAN = np.linspace(-1.0, 1.0, 16, dtype=np.float32)  # as examples/models/mlp_preprocess_bls
SCALE = np.linspace(0.5, 2.0, 16, dtype=np.float32)
PYTRITON_VENV = pathlib.Path.home() / ".cache/mmserve/pytriton-0.7.0-venv"


def triton_paths():
    names = ("TRITON_BIN", "TRITON_LIBS", "TRITON_BACKENDS", "TRITON_SITE")
    if all(n in os.environ for n in names):
        return {n: os.environ[n] for n in names}
    script = ROOT / "scripts" / "install-peers.sh"
    if script.exists():
        last = subprocess.run(["bash", str(script)], check=True, capture_output=True,
                              text=True).stdout.strip().splitlines()[-1]
        return dict(kv.split("=", 1) for kv in last.split())
    site = PYTRITON_VENV / "lib/python3.11/site-packages"
    paths = {"TRITON_BIN": str(site / "pytriton/tritonserver/bin/tritonserver"),
             "TRITON_LIBS": str(site / "nvidia_pytriton.libs"),
             "TRITON_BACKENDS": str(PYTRITON_VENV.parent / "triton-backends-0.7.0"),
             "TRITON_SITE": str(site)}
    for key in ("TRITON_BIN", "TRITON_BACKENDS"):
        if not os.path.exists(paths[key]):
            sys.exit(f"peer: {paths[key]} is missing; run scripts/install-peers.sh first")
    return paths


def ensure_onnxruntime(site):
    python = pathlib.Path(site).parents[2] / "bin" / "python"
    if subprocess.run([str(python), "-c", "import onnxruntime"],
                      capture_output=True).returncode != 0:
        print("peer: installing onnxruntime into Triton's venv (once)", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "onnxruntime", "numpy<2"],
                       check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_repo(directory):
    # token_stream and mlp_preprocess_bls are mmserve's examples now
    # (examples/models); mlp_classifier is Triton's own stand-in (see above).
    for name in ("token_stream", "mlp_preprocess_bls"):
        shutil.copytree(ROOT / "examples/models" / name, directory / name)
    shutil.copytree(PEER_MODELS / "mlp_classifier", directory / "mlp_classifier")
    shutil.copy(ROOT / "examples/models/mlp_classifier/1/model.onnx",
                directory / "mlp_classifier/1/model.onnx")


def start_triton(paths, repo, pin, log_path):
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    cmd = [paths["TRITON_BIN"], "--model-repository", str(repo),
           "--backend-directory", paths["TRITON_BACKENDS"],
           "--http-port", str(ports["http"]), "--grpc-port", str(ports["grpc"]),
           "--metrics-port", str(ports["metrics"])]
    if pin:
        cmd = ["taskset", "-c", pin] + cmd
    env = dict(os.environ, LD_LIBRARY_PATH=paths["TRITON_LIBS"])
    # The stub's embedded Python ignores PYTHONPATH and puts '' (the working
    # directory) on sys.path: run from the venv's site-packages.
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=paths["TRITON_SITE"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    url = f"http://127.0.0.1:{ports['http']}/v2/health/ready"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"peer: tritonserver exited ({proc.returncode}); log:\n"
                     + pathlib.Path(log_path).read_text()[-4000:])
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc, ports
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("peer: tritonserver not ready after 120 s; log:\n"
             + pathlib.Path(log_path).read_text()[-4000:])


# ------------------------------------------------------------------ checks

TEXT = "the quick brown fox jumps"


def check_stream_grpc(grpc_url):
    results = queue.Queue()
    client = grpcclient.InferenceServerClient(grpc_url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    text = grpcclient.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([TEXT.encode()], dtype=np.object_))
    client.async_stream_infer("token_stream", [text], request_id="s1",
                              enable_empty_final_response=True)
    tokens, indices = [], []
    while True:
        result, error = results.get(timeout=30)
        assert error is None, error
        response = result.get_response()
        final = response.parameters["triton_final_response"].bool_param
        assert response.id == "s1", response.id
        if final:
            assert not response.outputs, response  # the final response is empty
            break
        tokens.append(result.as_numpy("TOKEN")[0].decode())
        indices.append(int(result.as_numpy("INDEX")[0]))
    client.stop_stream()
    client.close()
    assert tokens == TEXT.split() and indices == list(range(len(tokens))), (tokens, indices)
    print(f"  token_stream gRPC stream: {len(tokens)} token responses in order, then an empty "
          "final one")


def check_stream_http(http_url):
    req = urllib.request.Request(f"http://{http_url}/v2/models/token_stream/generate_stream",
                                 data=json.dumps({"TEXT": TEXT}).encode(),
                                 headers={"Content-Type": "application/json"})
    events = []
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers.get("Content-Type", "").startswith("text/event-stream"), r.headers
        for line in r.read().decode().splitlines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    tokens = [e["TOKEN"] for e in events if "TOKEN" in e]
    assert tokens == TEXT.split(), events
    print(f"  token_stream HTTP generate_stream: {len(events)} events, tokens in order: "
          f"{json.dumps(events[0])} ...")


def check_stream_refused_unary(http_url):
    client = httpclient.InferenceServerClient(http_url)
    text = httpclient.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([TEXT.encode()], dtype=np.object_))
    try:
        client.infer("token_stream", [text])
    except InferenceServerException as e:
        print(f"  token_stream unary HTTP infer refused: {e.message()[:100]}")
    else:
        raise AssertionError("a decoupled model answered a unary HTTP infer")
    finally:
        client.close()


def mlp_inputs(module, x, name):
    inp = module.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return [inp]


def check_bls(module, url, label):
    client = module.InferenceServerClient(url)
    try:
        raw = np.random.default_rng(19).normal(0, 3, size=(3, 16)).astype(np.float32)
        bls = client.infer("mlp_preprocess_bls", mlp_inputs(module, raw, "RAW"))
        direct = client.infer("mlp_classifier",
                              mlp_inputs(module, (raw - MEAN) / SCALE, "input"))
        expected = direct.as_numpy("probabilities")
        got = bls.as_numpy("PROBABILITIES")
        assert got.shape == (3, 10) and np.array_equal(got, expected), (got, expected)
        assert bls.as_numpy("LABEL").ravel().tolist() == expected.argmax(-1).tolist()
        try:
            client.infer("mlp_preprocess_bls",
                         mlp_inputs(module, np.zeros((1, 8), np.float32), "RAW"))
        except InferenceServerException:
            pass
        else:
            raise AssertionError("a wrong input shape was accepted")
    finally:
        client.close()
    print(f"  mlp_preprocess_bls {label}: equals preprocess + direct mlp_classifier "
          "(3 rows); a wrong shape is refused")


def run_checks(http_url, grpc_url):
    check_stream_grpc(grpc_url)
    check_stream_http(http_url)
    check_stream_refused_unary(http_url)
    check_bls(httpclient, http_url, "HTTP")
    check_bls(grpcclient, grpc_url, "gRPC")
    print("== all answers as expected")


# ------------------------------------------------------------------- bench

PERF_ANALYZER = pathlib.Path.home() / ".cache/mmserve/perf_analyzer-2.41.0"


def client_cpus(pin):
    """The CPUs the load generator runs on: those tritonserver is not pinned to."""
    if not pin:
        return None
    server = set()
    for part in pin.split(","):
        lo, _, hi = part.partition("-")
        server.update(range(int(lo), int(hi or lo) + 1))
    rest = [c for c in sorted(os.sched_getaffinity(0)) if c not in server]
    return ",".join(map(str, rest)) or None


def pa_point(proto, port, model, concurrency, seconds, cpus, extra=()):
    """perf_analyzer (scripts/install-deps.sh part 4): (p50 us, req/s);
    `extra`: more of its arguments."""
    with tempfile.NamedTemporaryFile(suffix=".csv") as csv:
        cmd = [str(PERF_ANALYZER / "perf_analyzer"), "-m", model, "-i", proto,
               "-u", f"127.0.0.1:{port}", "--concurrency-range", str(concurrency),
               "--measurement-interval", str(int(seconds * 1000)), "--percentile", "50",
               # A shared machine: accept 3 windows within 30 % of each other.
               "--stability-percentage", "30", "--max-trials", "8",
               "-f", csv.name, *extra]
        if cpus:
            cmd = ["taskset", "-c", cpus] + cmd
        run = subprocess.run(cmd, capture_output=True, text=True,
                             env=dict(os.environ, LD_LIBRARY_PATH=str(PERF_ANALYZER)))
        if run.returncode != 0:
            sys.exit(f"peer: perf_analyzer failed ({run.returncode}):\n{run.stdout[-2000:]}"
                     f"{run.stderr[-2000:]}")
        header, row = pathlib.Path(csv.name).read_text().splitlines()[:2]
        fields = dict(zip(header.split(","), row.split(",")))
        return float(fields["p50 latency"]), float(fields["Inferences/Second"])


def loop_point(proto, port, model, seconds):
    """A tritonclient loop, one request at a time: (p50 us, req/s)."""
    module = httpclient if proto == "http" else grpcclient
    x = np.random.default_rng(7).normal(0, 3, size=(1, 16)).astype(np.float32)
    name = "RAW" if model == "mlp_preprocess_bls" else "input"
    client = module.InferenceServerClient(f"127.0.0.1:{port}")
    inputs = mlp_inputs(module, x, name)
    for _ in range(50):
        client.infer(model, inputs)
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter_ns()
        client.infer(model, inputs)
        times.append(time.perf_counter_ns() - t0)
    client.close()
    return statistics.median(times) / 1e3, len(times) / seconds


def bench(ports, seconds, pin):
    use_pa = (PERF_ANALYZER / "perf_analyzer").exists()
    cpus = client_cpus(pin)
    print(f"   load generator: {'perf_analyzer' if use_pa else 'a tritonclient loop'}"
          f" on CPUs {cpus or 'any'}; {seconds:g} s per point, direct and BLS interleaved")
    models = {"direct": "mlp_classifier", "bls": "mlp_preprocess_bls"}
    rows = []
    for proto in ("http", "grpc"):
        port = ports[proto]
        p50 = {k: loop_point(proto, port, m, seconds)[0] if not use_pa else
               pa_point(proto, port, m, 1, seconds, cpus)[0] for k, m in models.items()}
        rps = {k: pa_point(proto, port, m, 32, seconds, cpus)[1] for k, m in models.items()} \
            if use_pa else None
        rows.append((proto, p50, rps))
    print("\n| server | protocol | direct p50 c1 us | BLS p50 c1 us | BLS cost p50 us |"
          " BLS/direct p50 | direct req/s c32 | BLS req/s c32 | BLS/direct req/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for proto, p50, rps in rows:
        thr = (f"{rps['direct']:.0f} | {rps['bls']:.0f} | {rps['bls'] / rps['direct']:.2f}x"
               if rps else "- | - | -")
        print(f"| triton | {proto} | {p50['direct']:.0f} | {p50['bls']:.0f} | "
              f"{p50['bls'] - p50['direct']:.0f} | {p50['bls'] / p50['direct']:.2f}x | {thr} |")
    print("\nmmserve's side of this table: bench/bls_cost.py")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3, help="per point")
    parser.add_argument("--pin", default="0", help="taskset CPU list for tritonserver ('' off)")
    parser.add_argument("--no-bench", action="store_true")
    parser.add_argument("--server", nargs=2, metavar=("HTTP", "GRPC"),
                        help="only run the checks against a server already running at "
                        "HTTP and GRPC (host:port), e.g. mmserve serving examples/models "
                        "(token_stream and mlp_preprocess_bls among them)")
    args = parser.parse_args()
    if args.server:
        print(f"== checking the server at {args.server[0]} (HTTP), {args.server[1]} (gRPC)")
        run_checks(*args.server)
        return 0
    paths = triton_paths()
    ensure_onnxruntime(paths["TRITON_SITE"])
    with tempfile.TemporaryDirectory(prefix="mmserve-peer-models.") as tmp:
        tmp = pathlib.Path(tmp)
        make_repo(tmp / "repo")
        proc, ports = start_triton(paths, tmp / "repo", args.pin, tmp / "triton.log")
        try:
            http_url, grpc_url = f"127.0.0.1:{ports['http']}", f"127.0.0.1:{ports['grpc']}"
            print(f"== Triton ({paths['TRITON_BIN']}) serving bench/peer_models/")
            run_checks(http_url, grpc_url)
            if not args.no_bench:
                print(f"== BLS call vs direct call to mlp_classifier, tritonserver pinned "
                      f"to CPU {args.pin or 'none'}")
                bench(ports, args.seconds, args.pin)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
