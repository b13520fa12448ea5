"""Triton's perf_analyzer against mmserve: a few seconds per mode, zero errors.

scripts/install-deps.sh caches perf_analyzer (from the tritonclient 2.41
wheel) under ~/.cache/mmserve; $MMSERVE_PERF_ANALYZER overrides the path.
"""
import os
import subprocess
from pathlib import Path

import pytest

PA = Path(os.environ.get("MMSERVE_PERF_ANALYZER",
                         Path.home() / ".cache" / "mmserve" / "perf_analyzer-2.41.0" /
                         "perf_analyzer"))


def perf_analyzer(server, *args):
    if not PA.exists():
        pytest.fail(f"perf_analyzer not found at {PA}: run scripts/install-deps.sh")
    env = dict(os.environ, LD_LIBRARY_PATH=str(PA.parent))
    # Count windows, not time windows, and a loose stability bound: the run
    # ends after a fixed number of requests however slow the machine is.
    cmd = [str(PA), *args, "--measurement-mode", "count_windows",
           "--measurement-request-count", "50", "--stability-percentage", "1000",
           "--max-trials", "3"]
    if "-i" in args:
        cmd += ["-u", server.grpc_url]
    else:
        cmd += ["-u", server.url]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "error" not in out.lower(), out
    assert "Throughput:" in out, out
    return out


MODES = {
    "http": [],
    "http shm": ["--shared-memory", "system"],
    "grpc": ["-i", "grpc"],
    "grpc shm": ["-i", "grpc", "--shared-memory", "system"],
    "grpc stream": ["-i", "grpc", "--streaming"],
}


@pytest.mark.parametrize("mode", MODES)
def test_add_sub(server, mode):
    perf_analyzer(server, "-m", "add_sub", *MODES[mode])


@pytest.mark.parametrize("mode", ["http", "grpc shm"])
def test_other_example_models(server, mode):
    perf_analyzer(server, "-m", "mlp_classifier", "-b", "8", *MODES[mode])
    perf_analyzer(server, "-m", "image_cnn", "--shape", "image:3,32,48", *MODES[mode])
    perf_analyzer(server, "-m", "string_int", "--shape", "tokens:4", "--shape", "text:4",
                  *MODES[mode])


def test_concurrency_sweep_over_grpc(server):
    out = perf_analyzer(server, "-m", "add_sub", "-i", "grpc", "--concurrency-range", "1:4:3")
    assert "Concurrency: 4" in out, out
