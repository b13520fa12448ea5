"""Model lifecycle through the real interfaces: control modes, the repository
API on HTTP and gRPC, on-demand loading, eviction under a memory budget,
version swaps under traffic, bad models, and memory across load/unload cycles.

Models are "offset" models (y = x + k, scripts/make_example_models.py), so
every answer says which model and version produced it.
"""
import importlib.util
import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import ROOT, Server, release_binary

_spec = importlib.util.spec_from_file_location("make_models", ROOT / "scripts" / "make_example_models.py")
make_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_models)

X = np.arange(4, dtype=np.float32)


def add_version(repo, name, version, k, config_extra=""):
    """Writes NAME/VERSION atomically (built aside, then renamed into place),
    so a polling server never sees half a version."""
    staging = Path(repo) / f".staging-{name}-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    make_models.write_offset(staging, name, version, float(k))
    (Path(repo) / name).mkdir(parents=True, exist_ok=True)
    config = Path(repo) / name / "config.pbtxt"
    if not config.exists():
        config.write_text(make_models.OFFSET_CONFIG.format(name=name, width=4) + config_extra)
    os.rename(staging / name / str(version), Path(repo) / name / str(version))
    shutil.rmtree(staging)


def infer(server, name, version=""):
    """(status code, JSON body) of one HTTP inference of X."""
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "data": X.tolist()}]}
    r = requests.post(server.base + path, json=body, timeout=60)
    return r.status_code, r.json()


def index(server):
    r = requests.post(server.base + "/v2/repository/index", timeout=60)
    assert r.status_code == 200, r.text
    return {(m["name"], m.get("version", "")): m for m in r.json()}


def wait_until(predicate, what, deadline_s=120):
    """Waits for a condition (not for a time): the deadline only turns a hang
    into a failure."""
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def load(server, name, body=None):
    return requests.post(f"{server.base}/v2/repository/models/{name}/load",
                         data=json.dumps(body) if body is not None else b"", timeout=120)


def unload(server, name):
    return requests.post(f"{server.base}/v2/repository/models/{name}/unload", timeout=120)


@pytest.fixture()
def repo(tmp_path):
    for name, k in (("a", 1), ("b", 2), ("c", 3)):
        add_version(tmp_path, name, 1, k)
    return tmp_path


@pytest.fixture()
def explicit(repo):
    s = Server([repo], "--model-control-mode", "explicit", "--load-model", "a").start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def test_explicit_mode_repository_api_over_http_and_grpc(explicit):
    idx = index(explicit)
    assert idx[("a", "1")]["state"] == "READY"
    assert idx[("b", "")] == {"name": "b", "state": "UNAVAILABLE", "reason": "not loaded"}

    http = httpclient.InferenceServerClient(explicit.url)
    grpc = grpcclient.InferenceServerClient(explicit.grpc_url)
    try:
        http.load_model("b")
        assert http.is_model_ready("b")
        status, out = infer(explicit, "b")
        assert status == 200 and out["outputs"][0]["data"] == (X + 2).tolist()

        grpc.unload_model("b")
        assert not grpc.is_model_ready("b")
        states = {m["name"]: m for m in grpc.get_model_repository_index(as_json=True)["models"]}
        assert states["b"]["state"] == "UNAVAILABLE" and states["b"]["reason"] == "unloaded"

        grpc.load_model("b")
        assert http.is_model_ready("b")
        http.unload_model("b")
        assert not http.is_model_ready("b")

        # Unknown and malformed names: clear errors, nothing touched on disk.
        r = load(explicit, "nope")
        assert r.status_code == 404 and "not in any model repository" in r.json()["error"]
        r = load(explicit, "..%2Fa")
        assert r.status_code == 400, r.text
        r = load(explicit, "%2E%2E")
        assert r.status_code == 400, r.text
        with pytest.raises(InferenceServerException) as e:
            grpc.load_model("../a")
        assert e.value.status() == "StatusCode.INVALID_ARGUMENT"
        with pytest.raises(InferenceServerException) as e:
            grpc.unload_model("nope")
        assert e.value.status() == "StatusCode.NOT_FOUND"
        # Model files in the request are refused, not half-applied.
        r = load(explicit, "b", {"parameters": {"file:1/model.onnx": "AAAA"}})
        assert r.status_code == 400 and "model repository" in r.json()["error"]
        r = load(explicit, "b", {"parameters": {"config": 5}})
        assert r.status_code == 400 and "config" in r.json()["error"]
        r = load(explicit, "b", b"not json".decode())
        assert r.status_code == 400
    finally:
        http.close()
        grpc.close()


def test_load_with_a_config_override(explicit, repo):
    add_version(repo, "a", 2, 20)
    http = httpclient.InferenceServerClient(explicit.url)
    try:
        config = {"platform": "onnxruntime_onnx",
                  "version_policy": {"specific": {"versions": [1]}},
                  "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}],
                  "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [4]}]}
        http.load_model("a", config=json.dumps(config))
        status, out = infer(explicit, "a")
        assert status == 200 and out["model_version"] == "1"
        http.load_model("a")  # config.pbtxt again: latest version
        status, out = infer(explicit, "a")
        assert status == 200 and out["model_version"] == "2"
        assert out["outputs"][0]["data"] == (X + 20).tolist()
        # A bad override is rejected and the model keeps serving.
        with pytest.raises(InferenceServerException) as e:
            http.load_model("a", config='{"input": [{"name": "x", "data_type": "TYPE_NOPE"}]}')
        assert "config" in e.value.message()
        with pytest.raises(InferenceServerException) as e:
            http.load_model("a", config='{"name": "b"}')
        assert "names model 'b'" in e.value.message()
        assert infer(explicit, "a")[0] == 200
    finally:
        http.close()


def test_a_load_override_cannot_choose_a_python_environment(explicit, repo):
    """EXECUTION_ENV_PATH chooses code a model runs (its packages): only the
    repository's config.pbtxt may set it, never a client's load override."""
    http = httpclient.InferenceServerClient(explicit.url)
    try:
        config = {"platform": "onnxruntime_onnx",
                  "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}],
                  "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [4]}],
                  "parameters": {"EXECUTION_ENV_PATH": {"string_value": "/tmp/evil.tar.gz"}}}
        with pytest.raises(InferenceServerException) as e:
            http.load_model("a", config=json.dumps(config))
        assert ("a load override cannot set parameter EXECUTION_ENV_PATH"
                in e.value.message()), e.value.message()
        # Nor the built-in MLflow loader (with --mlflow-create-env it would
        # install the folder's requirements.txt).
        config["parameters"] = {"mmserve_mlflow_pyfunc": {"string_value": "columns"}}
        with pytest.raises(InferenceServerException) as e:
            http.load_model("a", config=json.dumps(config))
        assert ("a load override cannot set parameter mmserve_mlflow_pyfunc"
                in e.value.message()), e.value.message()
        # Other parameters are the client's to set.
        config["parameters"] = {"anything": {"string_value": "x"}}
        http.load_model("a", config=json.dumps(config))
        assert infer(explicit, "a")[0] == 200
    finally:
        http.close()


def test_on_demand_load_under_concurrency(repo):
    s = Server([repo], "--model-control-mode", "explicit").start()
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: infer(s, "b"), range(32)))
        assert all(code == 200 for code, _ in results), results
        assert all(out["outputs"][0]["data"] == (X + 2).tolist() for _, out in results)
        # One load served every waiting request.
        assert s.text().count("model 'b' version 1 is READY") == 1, s.text()
        # A model that is not in any repository is still NOT_FOUND.
        code, out = infer(s, "nope")
        assert code == 404 and "unknown model" in out["error"]
        # Without on-demand loading, an unloaded model is UNAVAILABLE.
    finally:
        assert s.stop() == 0, s.text()[-5000:]
    s = Server([repo], "--model-control-mode", "explicit", "--load-on-demand", "false").start()
    try:
        code, out = infer(s, "b")
        assert code == 503 and "not loaded" in out["error"], out
    finally:
        assert s.stop() == 0, s.text()[-5000:]


@pytest.mark.parametrize("flags", [
    ("--model-control-mode", "explicit", "--load-on-demand"),  # last on the command line
    ("--load-on-demand", "--model-control-mode", "explicit"),  # before another flag
])
def test_load_on_demand_given_alone_means_true(repo, flags):
    """A boolean flag given without a value is on, as users of such flags expect; it
    takes no following flag for its value."""
    s = Server([repo], *flags).start()
    try:
        code, out = infer(s, "b")
        assert code == 200, out
        assert out["outputs"][0]["data"] == (X + 2).tolist()
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def test_eviction_under_a_memory_budget(tmp_path):
    # Declared footprints make the arithmetic exact: two fit, not three.
    for name, k in (("a", 1), ("b", 2), ("c", 3)):
        add_version(tmp_path, name, 1, k, "mmserve { memory_footprint_bytes: 1000000 }\n")
    add_version(tmp_path, "pinned", 1, 9,
                "mmserve { memory_footprint_bytes: 1000000 pinned: true }\n")
    add_version(tmp_path, "huge", 1, 9, "mmserve { memory_footprint_bytes: 10000000 }\n")
    s = Server([tmp_path], "--model-control-mode", "explicit", "--model-memory-budget",
               "3000000").start()
    try:
        assert load(s, "pinned").status_code == 200
        assert infer(s, "a")[0] == 200  # on demand
        assert infer(s, "b")[0] == 200
        assert infer(s, "a")[0] == 200  # a is now more recent than b
        assert infer(s, "c")[0] == 200  # evicts b, the least recently used
        idx = index(s)
        assert idx[("b", "1")]["state"] == "UNAVAILABLE"
        assert "evicted" in idx[("b", "1")]["reason"]
        assert idx[("a", "1")]["state"] == "READY" and idx[("c", "1")]["state"] == "READY"
        assert idx[("pinned", "1")]["state"] == "READY"
        # b comes back on demand; the pinned model never leaves.
        assert infer(s, "b")[0] == 200
        assert index(s)[("pinned", "1")]["state"] == "READY"
        # Too big for the budget at all: a clear RESOURCE_EXHAUSTED.
        r = load(s, "huge")
        assert r.status_code == 429, r.text
        err = r.json()["error"]
        assert "needs 9.54 MiB" in err and "budget of 2.86 MiB" in err and "pinned" in err, err
        code, out = infer(s, "huge")
        assert code == 429 and "budget" in out["error"]
        assert infer(s, "a")[0] == 200  # everything else still serves
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def test_poll_mode_swaps_versions_under_traffic_without_a_failed_request(tmp_path):
    add_version(tmp_path, "m", 1, 1)
    s = Server([tmp_path], "--model-control-mode", "poll", "--repository-poll-secs", "0.1").start()
    stop = threading.Event()
    seen = []  # (version, output) in order
    per_client = {0: [], 1: []}  # each client's versions, in its (sequential) order
    errors = []

    def client(cid):
        session = requests.Session()
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "data": X.tolist()}]}
        while not stop.is_set():
            r = session.post(s.base + "/v2/models/m/infer", json=body, timeout=60)
            if r.status_code != 200:
                errors.append(r.text)
                continue
            out = r.json()
            seen.append((out["model_version"], out["outputs"][0]["data"]))
            per_client[cid].append(out["model_version"])

    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        wait_until(lambda: len(seen) > 20, "requests on version 1")
        add_version(tmp_path, "m", 2, 2)
        wait_until(lambda: any(v == "2" for v, _ in seen), "the switch to version 2")
        n = len(seen)
        wait_until(lambda: len(seen) > n + 50, "requests after the switch")
        stop.set()
        for t in threads:
            t.join()
        assert errors == []
        for version, data in seen:
            assert data == (X + int(version)).tolist(), (version, data)
        # The switch is atomic: once a client got an answer from version 2,
        # every request it sent afterwards was answered by version 2.
        for versions in per_client.values():
            assert "2" in versions
            first_v2 = versions.index("2")
            assert set(versions[first_v2:]) == {"2"}, versions
        wait_until(lambda: index(s)[("m", "1")]["state"] == "UNAVAILABLE", "version 1 unloaded")

        # Added and removed models are followed; others are not disturbed.
        add_version(tmp_path, "n", 1, 5)
        wait_until(lambda: infer(s, "n")[0] == 200, "model n loaded")
        shutil.rmtree(tmp_path / "n")
        wait_until(lambda: ("n", "1") not in index(s) and ("n", "") not in index(s), "n removed")
        assert infer(s, "m")[0] == 200
        # Load and unload belong to explicit mode.
        r = load(s, "m")
        assert r.status_code == 503 and "explicit" in r.json()["error"]
    finally:
        stop.set()
        assert s.stop() == 0, s.text()[-5000:]


def test_bad_models_get_reasons_and_the_rest_serve(repo):
    good = repo / "a" / "1" / "model.onnx"
    (repo / "truncated" / "1").mkdir(parents=True)
    (repo / "truncated" / "1" / "model.onnx").write_bytes(good.read_bytes()[:60])
    (repo / "truncated" / "config.pbtxt").write_text(
        make_models.OFFSET_CONFIG.format(name="truncated", width=4))
    add_version(repo, "disagrees", 1, 1)
    (repo / "disagrees" / "config.pbtxt").write_text(
        make_models.OFFSET_CONFIG.format(name="disagrees", width=4).replace("TYPE_FP32", "TYPE_INT32", 1))
    add_version(repo, "oddversions", 3, 3)
    (repo / "oddversions" / "abc").mkdir()
    (repo / "oddversions" / "0007").mkdir()
    s = Server([repo], "--model-control-mode", "explicit").start()
    try:
        r = load(s, "truncated")
        assert r.status_code in (400, 500), r.text
        assert "truncated" in r.json()["error"]
        r = load(s, "disagrees")
        assert r.status_code == 400 and "TYPE_INT32" in r.json()["error"], r.text
        assert load(s, "oddversions").status_code == 200
        status, out = infer(s, "oddversions")
        assert status == 200 and out["model_version"] == "3"
        idx = index(s)
        assert idx[("truncated", "1")]["state"] == "UNAVAILABLE"
        assert idx[("disagrees", "1")]["state"] == "UNAVAILABLE"
        assert "0007" in s.text()  # the odd version folder was reported
        # A load storm of one model: one load, every caller told it is READY.
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda _: load(s, "b").status_code, range(24)))
        assert codes == [200] * 24
        assert s.text().count("model 'b' version 1 is READY") == 1
        assert infer(s, "b")[0] == 200
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def test_model_deleted_from_disk_while_loaded(explicit, repo):
    shutil.rmtree(repo / "a")
    assert infer(explicit, "a")[0] == 200  # the loaded copy keeps serving
    r = load(explicit, "a")
    assert r.status_code == 404 and "keep serving" in r.json()["error"], r.text
    assert infer(explicit, "a")[0] == 200
    assert unload(explicit, "a").status_code == 200
    code, out = infer(explicit, "a")
    assert code == 404, out  # gone from disk: unknown now, not loadable on demand


def test_unload_with_requests_in_flight(repo):
    s = Server([repo], "--model-control-mode", "explicit", "--load-model", "a",
               "--load-on-demand", "false").start()
    stop = threading.Event()
    results = []

    def client():
        while not stop.is_set():
            code, out = infer(s, "a")
            results.append((code, out))

    try:
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: len(results) > 20, "requests in flight")
        assert unload(s, "a").status_code == 200
        n = len(results)
        wait_until(lambda: len(results) > n + 8, "requests after the unload")
        stop.set()
        for t in threads:
            t.join()
        # Every request got an answer: the output, or a clean "not ready".
        for code, out in results:
            if code == 200:
                assert out["outputs"][0]["data"] == (X + 1).tolist()
            else:
                assert code == 503 and "a" in out["error"], (code, out)
        assert results[-1][0] == 503
        assert requests.get(s.base + "/v2/health/ready", timeout=10).status_code == 200
    finally:
        stop.set()
        assert s.stop() == 0, s.text()[-5000:]


def test_warmup_runs_before_ready(tmp_path):
    add_version(tmp_path, "warm", 1, 1,
                'model_warmup { name: "zeros" batch_size: 1 count: 2 inputs { key: "x" '
                'value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } }\n')
    add_version(tmp_path, "cold", 1, 1,
                'model_warmup { name: "from_file" batch_size: 1 inputs { key: "x" '
                'value { data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "missing.bin" } } }\n')
    s = Server([tmp_path]).start()
    try:
        assert infer(s, "warm")[0] == 200
        idx = index(s)
        assert idx[("cold", "1")]["state"] == "UNAVAILABLE"
        assert "warmup" in idx[("cold", "1")]["reason"] and "missing.bin" in idx[("cold", "1")]["reason"]
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def rss_bytes(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_load_unload_cycles_return_memory(repo):
    # Against the release build: ASan's allocator keeps size-class regions and
    # allocation stacks for good, so its RSS creeps up with any churn.
    s = Server([repo], "--model-control-mode", "explicit", binary_path=release_binary()).start()
    session = requests.Session()

    def cycle():
        r = session.post(f"{s.base}/v2/repository/models/a/load", timeout=120)
        assert r.status_code == 200, r.text
        r = session.post(f"{s.base}/v2/repository/models/a/unload", timeout=120)
        assert r.status_code == 200, r.text

    try:
        for _ in range(100):  # allocator and ONNX Runtime warm-up
            cycle()
        before = rss_bytes(s.proc.pid)
        for _ in range(1000):
            cycle()
        after = rss_bytes(s.proc.pid)
        assert after < before * 1.05, f"RSS grew from {before} to {after} over 1000 cycles"
    finally:
        assert s.stop() == 0, s.text()[-5000:]
