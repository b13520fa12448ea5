#!/usr/bin/env python3
"""bench/image_4mib.py BUILD_DIR: one ~4 MiB FP32 image (1x3x512x683) through
image_cnn at concurrency 1 over HTTP binary, HTTP + system shared memory, gRPC
(raw_input_contents) and gRPC + shared memory, against raw ONNX Runtime Run on
the same tensor (bench_ort_raw), all in one run. Prints a markdown table of
client-observed p50 latencies and their ratio to the raw Run.

Env: BENCH_REQUESTS (40 per mode), BENCH_PIN (1: server on CPU 0, client and
bench_ort_raw on CPU 1), BENCH_GRPC_TRANSPORT (the server's --grpc-transport:
native, the default, or grpcpp).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm

ROOT = Path(__file__).resolve().parents[1]
SHAPE = [1, 3, 512, 683]
NBYTES = int(np.prod(SHAPE)) * 4
OUT_BYTES = 10 * 4


def start_server(build, pin):
    cmd = [str(build / "mmserve"), "--model-repository", str(ROOT / "examples" / "models"),
           "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", "--max-request-bytes", str(64 << 20),
           "--grpc-transport", os.environ.get("BENCH_GRPC_TRANSPORT", "native")]
    if pin:
        cmd = ["taskset", "-c", "0"] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ports = {}
    ready = threading.Event()

    def pump():
        for line in proc.stdout:
            for kind in ("HTTP", "gRPC"):
                m = re.search(kind + r" server listening on [^:]+:(\d+)", line)
                if m:
                    ports[kind] = int(m.group(1))
            if "mmserve is ready" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(60) or proc.poll() is not None:
        sys.exit("mmserve did not start")
    return proc, ports


def p50_ms(fn, n):
    for _ in range(3):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main():
    build = ROOT / (sys.argv[1] if len(sys.argv) > 1 else "build/release")
    pin = os.environ.get("BENCH_PIN", "1") == "1" and os.cpu_count() >= 2
    n = int(os.environ.get("BENCH_REQUESTS", "40"))
    if pin:
        os.sched_setaffinity(0, {1})
    image = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    # What it runs, up to date (make release builds the server only).
    subprocess.run(["cmake", "--build", str(build), "--target", "mmserve", "bench_ort_raw"],
                   check=True, stdout=subprocess.DEVNULL)

    ort = subprocess.run([str(build / "bench" / "bench_ort_raw"), "--seconds", "3",
                          "--input-shape", ",".join(map(str, SHAPE)),
                          str(ROOT / "examples/models/image_cnn/1/model.onnx")],
                         capture_output=True, text=True, check=True).stdout
    ort_ms = float(re.search(r"p50_us=([\d.]+)", ort).group(1)) / 1e3

    proc, ports = start_server(build, pin)
    key = f"/mmserve_bench_{os.getpid()}"
    region = shm.create_shared_memory_region("bench_in", key + "_in", NBYTES)
    out_region = shm.create_shared_memory_region("bench_out", key + "_out", OUT_BYTES)
    shm.set_shared_memory_region(region, [image])
    results = {}
    try:
        http = httpclient.InferenceServerClient(f"localhost:{ports['HTTP']}")
        grpc = grpcclient.InferenceServerClient(f"localhost:{ports['gRPC']}")
        http.register_system_shared_memory("bench_in", key + "_in", NBYTES)
        http.register_system_shared_memory("bench_out", key + "_out", OUT_BYTES)

        def http_binary():
            inp = httpclient.InferInput("image", SHAPE, "FP32")
            inp.set_data_from_numpy(image, binary_data=True)
            http.infer("image_cnn", [inp])

        def grpc_raw():
            inp = grpcclient.InferInput("image", SHAPE, "FP32")
            inp.set_data_from_numpy(image)
            grpc.infer("image_cnn", [inp])

        def with_shm(module, client):
            def run():
                inp = module.InferInput("image", SHAPE, "FP32")
                inp.set_shared_memory("bench_in", NBYTES)
                out = module.InferRequestedOutput("logits")
                out.set_shared_memory("bench_out", OUT_BYTES)
                client.infer("image_cnn", [inp], outputs=[out])
            return run

        results["HTTP binary"] = p50_ms(http_binary, n)
        results["HTTP + shared memory"] = p50_ms(with_shm(httpclient, http), n)
        results["gRPC raw_input_contents"] = p50_ms(grpc_raw, n)
        results["gRPC + shared memory"] = p50_ms(with_shm(grpcclient, grpc), n)
        http.unregister_system_shared_memory()
    finally:
        shm.destroy_shared_memory_region(region)
        shm.destroy_shared_memory_region(out_region)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, cwd=ROOT).stdout.strip()
    print(f"\nimage_cnn, input FP32 {SHAPE} ({NBYTES / 2**20:.2f} MiB), concurrency 1, "
          f"{n} requests per mode, pinned={int(pin)}, git {git}\n")
    print("| path | p50 ms | ÷ raw ORT Run |")
    print("|---|---:|---:|")
    print(f"| raw ONNX Runtime Run (bench_ort_raw) | {ort_ms:.2f} | 1.00× |")
    for name, ms in results.items():
        print(f"| {name} | {ms:.2f} | {ms / ort_ms:.2f}× |")


if __name__ == "__main__":
    main()
