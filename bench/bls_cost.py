#!/usr/bin/env python3
"""The cost of a BLS call on mmserve: examples/models/mlp_preprocess_bls (a
Python model that standardizes RAW and calls the ONNX mlp_classifier with
pb_utils.InferenceRequest(...).exec()) against a direct client call of
mlp_classifier, in the same run, same server. Not part of `make test`.

  .venv/bin/python bench/bls_cost.py [BUILD_DIR] [--seconds S] [--pin CPUS] [--rounds N]

BUILD_DIR (default build/release) holds mmserve. The server is pinned to CPUS
(default 0; '' for none), the load generator to the other CPUs. First the
answers are checked (bench/python_peer_models.py's check: BLS equals
pre-processing plus a direct call, bit for bit, HTTP and gRPC). Then, per
protocol, batch 1, direct and BLS interleaved N rounds (the median kept):
p50 at concurrency 1 and req/s at concurrency 32 with perf_analyzer
(scripts/install-deps.sh part 4), or, where it is absent, p50 only from a
tritonclient loop. The difference is the BLS hop (worker -> server -> the
ONNX model's queue -> back) plus the pre-processing's few numpy operations
and the Python model's own hop. bench/python_peer_models.py measures the same
on Triton's tritonserver. Exit status 1 on a wrong answer.
"""
import argparse
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import python_peer_models as peer  # noqa: E402  (the checks and the load points)

ROOT = peer.ROOT
MODELS = {"direct": "mlp_classifier", "bls": "mlp_preprocess_bls"}


def start_mmserve(binary, repo, pin, log_path, extra=()):
    cmd = [str(binary), "--model-repository", str(repo), "--http-port", "0", "--grpc-port", "0",
           "--metrics-port", "0", "--log-level", "info", *extra]
    if pin:
        cmd = ["taskset", "-c", pin] + cmd
    log = open(log_path, "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    ports = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(ports) < 2:
        if proc.poll() is not None:
            sys.exit("bls_cost: mmserve exited; log:\n" + pathlib.Path(log_path).read_text())
        text = pathlib.Path(log_path).read_text()
        for proto, pattern in (("http", r"HTTP server listening on [^:]+:(\d+)"),
                               ("grpc", r"gRPC server listening on [^:]+:(\d+)")):
            m = re.search(pattern, text)
            if m:
                ports[proto] = int(m.group(1))
        time.sleep(0.1)
    url = f"http://127.0.0.1:{ports.get('http')}/v2/health/ready"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc, ports
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("bls_cost: mmserve not ready after 120 s; log:\n"
             + pathlib.Path(log_path).read_text()[-4000:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", nargs="?", default="build/release")
    parser.add_argument("--seconds", type=float, default=5, help="per point")
    parser.add_argument("--pin", default="0", help="taskset CPU list for mmserve ('' off)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-throughput", action="store_true",
                        help="p50 at concurrency 1 only (perf_analyzer at concurrency 32 against "
                             "mlp_classifier's ~40k req/s can outrun its one client CPU and not "
                             "end on a 2-core machine)")
    args = parser.parse_args()
    binary = ROOT / args.build / "mmserve"
    if not binary.exists():
        sys.exit(f"bls_cost: {binary} is missing; build it first (make release)")
    use_pa = (peer.PERF_ANALYZER / "perf_analyzer").exists()
    cpus = peer.client_cpus(args.pin)
    with tempfile.TemporaryDirectory(prefix="mmserve-bls-cost.") as tmp:
        tmp = pathlib.Path(tmp)
        for name in MODELS.values():
            shutil.copytree(ROOT / "examples/models" / name, tmp / "repo" / name)
        proc, ports = start_mmserve(binary, tmp / "repo", args.pin, tmp / "mmserve.log")
        try:
            http_url, grpc_url = f"127.0.0.1:{ports['http']}", f"127.0.0.1:{ports['grpc']}"
            print(f"== mmserve ({binary}) pinned to CPU {args.pin or 'none'}; load generator: "
                  f"{'perf_analyzer' if use_pa else 'a tritonclient loop'} on CPUs "
                  f"{cpus or 'any'}; {args.seconds:g} s per point, {args.rounds} rounds")
            peer.check_bls(peer.httpclient, http_url, "HTTP")
            peer.check_bls(peer.grpcclient, grpc_url, "gRPC")
            rows = []
            for proto in ("http", "grpc"):
                p50 = {k: [] for k in MODELS}
                rps = {k: [] for k in MODELS}
                for _ in range(args.rounds):
                    for kind, model in MODELS.items():  # interleaved
                        if use_pa:
                            p50[kind].append(peer.pa_point(proto, ports[proto], model, 1,
                                                           args.seconds, cpus)[0])
                            if not args.no_throughput:
                                rps[kind].append(peer.pa_point(proto, ports[proto], model, 32,
                                                               args.seconds, cpus)[1])
                        else:
                            p50[kind].append(peer.loop_point(proto, ports[proto], model,
                                                             args.seconds)[0])
                med = {k: statistics.median(v) for k, v in p50.items()}
                thr = ({k: statistics.median(v) for k, v in rps.items()}
                       if use_pa and not args.no_throughput else None)
                rows.append((proto, med, thr))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("\n| server | protocol | direct p50 c1 us | BLS p50 c1 us | BLS cost p50 us |"
          " BLS/direct p50 | direct req/s c32 | BLS req/s c32 | BLS/direct req/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for proto, p50, rps in rows:
        thr = (f"{rps['direct']:.0f} | {rps['bls']:.0f} | {rps['bls'] / rps['direct']:.2f}x"
               if rps else "- | - | -")
        print(f"| mmserve | {proto} | {p50['direct']:.0f} | {p50['bls']:.0f} | "
              f"{p50['bls'] - p50['direct']:.0f} | {p50['bls'] / p50['direct']:.2f}x | {thr} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
