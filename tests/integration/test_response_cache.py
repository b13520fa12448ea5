"""The response cache (issue 23): Triton's --cache-config local,size=BYTES with
response_cache { enable: true }, through tritonclient and raw HTTP. A hit is
bit-identical to the miss before it and never runs the model; the cache stays
within its bytes, dropping the least recently used; a new version never
answers with the old one's entries, which go with it; tenants never share
entries unless the model says so; outputs in shared memory, and decoupled
models, are never cached; the statistics and metrics count it all."""
import re
import shutil
import sys
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from conftest import EXAMPLES, ROOT, Server
from decoupled_models import REPEAT_CONFIG
from decoupled_models import write_model as write_backend_model
from test_tenancy import KEY_A, KEY_OPS, bearer, write_tenants

sys.path.insert(0, str(ROOT / "scripts"))
from pipeline_models import onnx_model  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

CACHE_BYTES = 4000


def cached(config_text, share=False):
    extra = "response_cache { enable: true }\n"
    if share:
        extra += "mmserve { share_cached_responses: true }\n"
    return config_text.rstrip() + "\n" + extra


def write_offset(repo, name, version, k):
    """X FP32 [-1] -> Y = X + k (its version says which k)."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["n"])
    k_init = helper.make_tensor("k", TensorProto.FLOAT, [1], [float(k)])
    onnx_model(repo / name / str(version) / "model.onnx",
               [helper.make_node("Add", ["X", "k"], ["Y"])], [x], [y], [k_init])
    (repo / name / "config.pbtxt").write_text(cached(f"""name: "{name}"
platform: "onnxruntime_onnx"
input [{{ name: "X" data_type: TYPE_FP32 dims: [ -1 ] }}]
output [{{ name: "Y" data_type: TYPE_FP32 dims: [ -1 ] }}]
"""))


def write_mlp(repo, name="mlp_classifier", share=False):
    shutil.copytree(EXAMPLES / "mlp_classifier", repo / name)
    text = (repo / name / "config.pbtxt").read_text().replace('"mlp_classifier"', f'"{name}"')
    (repo / name / "config.pbtxt").write_text(cached(text, share))


def stats(url, model, headers=None):
    r = requests.get(f"{url}/v2/models/{model}/stats", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    s = r.json()["model_stats"]
    return s[-1]


def metric(server, name, labels=""):
    text = requests.get(server.metrics_url, timeout=10).text
    m = re.search(rf"^{name}{{?{labels}[^\n]*?}}? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else None


def mlp_body(seed):
    x = np.random.default_rng(seed).standard_normal((1, 16)).astype(np.float32)
    return x, {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 16],
                           "data": x.flatten().tolist()}]}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("cache")
    write_mlp(repo)
    write_offset(repo, "offset", 1, 1)
    write_backend_model(repo, "repeat", REPEAT_CONFIG + "response_cache { enable: true }\n")
    return repo


@pytest.fixture(scope="module")
def server(repo):
    s = Server([repo], "--cache-config", f"local,size={CACHE_BYTES}", "--model-control-mode",
               "explicit", "--load-model", "*", "--enable-test-backends").start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def test_a_hit_is_bit_identical_to_the_miss_and_never_runs_the_model(server):
    x = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)
    for module, url in ((httpclient, server.url), (grpcclient, server.grpc_url)):
        c = module.InferenceServerClient(url)
        before = stats(server.base, "mlp_classifier")
        i = module.InferInput("input", [2, 16], "FP32")
        i.set_data_from_numpy(x)
        first = c.infer("mlp_classifier", [i]).as_numpy("probabilities")
        second = c.infer("mlp_classifier", [i]).as_numpy("probabilities")
        after = stats(server.base, "mlp_classifier")
        assert first.tobytes() == second.tobytes()
        # One of the two ran (gRPC's first may hit HTTP's entry: same key).
        assert after["execution_count"] - before["execution_count"] <= 1
        assert after["inference_stats"]["cache_hit"]["count"] > \
            before["inference_stats"]["cache_hit"].get("count", 0)
        assert after["inference_stats"]["success"]["count"] - \
            before["inference_stats"]["success"]["count"] == 2
    s = stats(server.base, "mlp_classifier")["inference_stats"]
    assert s["cache_hit"]["count"] == 3 and s["cache_miss"]["count"] == 1
    assert s["cache_hit"]["ns"] > 0 and s["cache_miss"]["ns"] > 0
    assert metric(server, "mmserve_cache_hits_total", '.*model="mlp_classifier"') == 3
    assert metric(server, "mmserve_cache_misses_total", '.*model="mlp_classifier"') == 1


def test_the_cache_keeps_within_its_bytes_dropping_the_least_recently_used(server):
    session = requests.Session()
    url = f"{server.base}/v2/models/mlp_classifier/infer"
    # Measure one entry: every request below has the same shapes.
    entries0, bytes0 = metric(server, "mmserve_cache_entries"), metric(server, "mmserve_cache_bytes")
    assert session.post(url, json=mlp_body(100)[1], timeout=10).status_code == 200
    entry = metric(server, "mmserve_cache_bytes") - bytes0
    assert metric(server, "mmserve_cache_entries") == entries0 + 1 and entry > 0
    fits = int(CACHE_BYTES // entry)
    for seed in range(101, 101 + fits + 3):
        assert session.post(url, json=mlp_body(seed)[1], timeout=10).status_code == 200
    assert metric(server, "mmserve_cache_bytes") <= CACHE_BYTES
    assert metric(server, "mmserve_cache_capacity_bytes") == CACHE_BYTES
    assert metric(server, "mmserve_cache_evictions_total") > 0
    before = stats(server.base, "mlp_classifier")["inference_stats"]
    # The newest is there, the oldest is gone.
    session.post(url, json=mlp_body(101 + fits + 2)[1], timeout=10)
    mid = stats(server.base, "mlp_classifier")["inference_stats"]
    assert mid["cache_hit"]["count"] == before["cache_hit"]["count"] + 1
    session.post(url, json=mlp_body(100)[1], timeout=10)
    after = stats(server.base, "mlp_classifier")["inference_stats"]
    assert after["cache_miss"]["count"] == mid["cache_miss"]["count"] + 1


def test_a_new_version_never_answers_with_the_old_ones_entries(server, repo):
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2], "data": [1, 2]}]}
    url = f"{server.base}/v2/models/offset/infer"
    assert requests.post(url, json=body, timeout=10).json()["outputs"][0]["data"] == [2, 3]
    assert requests.post(url, json=body, timeout=10).json()["outputs"][0]["data"] == [2, 3]
    assert stats(server.base, "offset")["inference_stats"]["cache_hit"]["count"] == 1
    # The cache may be full from the tests before (the LRU one fills it): version 2's entry
    # can then make room by dropping the least recently used one. So what is conserved is
    # entries held plus entries evicted to make room.
    def held():
        return metric(server, "mmserve_cache_entries") + \
            metric(server, "mmserve_cache_evictions_total")

    entries = held()
    write_offset(repo, "offset", 2, 10)  # the newest version now
    r = requests.post(f"{server.base}/v2/repository/models/offset/load", timeout=60)
    assert r.status_code == 200, r.text
    r = requests.post(url, json=body, timeout=10).json()
    assert r["model_version"] == "2" and r["outputs"][0]["data"] == [11, 12]
    # Version 1 left, and its entry with it (version 2's is in).
    deadline = time.monotonic() + 30
    while held() != entries and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held() == entries
    # Unloading drops version 2's.
    assert requests.post(f"{server.base}/v2/repository/models/offset/unload",
                         timeout=60).status_code == 200
    while held() != entries - 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held() == entries - 1


def test_outputs_in_shared_memory_and_decoupled_models_are_never_cached(server):
    import tritonclient.utils.shared_memory as shm
    c = httpclient.InferenceServerClient(server.url)
    x = np.ones((1, 16), dtype=np.float32)
    handle = shm.create_shared_memory_region("cache_out", "/mmserve_cache_out", 40)
    try:
        c.register_system_shared_memory("cache_out", "/mmserve_cache_out", 40)
        before = stats(server.base, "mlp_classifier")
        for _ in range(2):
            i = httpclient.InferInput("input", [1, 16], "FP32")
            i.set_data_from_numpy(x)
            o = httpclient.InferRequestedOutput("probabilities")
            o.set_shared_memory("cache_out", 40)
            c.infer("mlp_classifier", [i], outputs=[o])
        after = stats(server.base, "mlp_classifier")
        assert after["execution_count"] - before["execution_count"] == 2
        for k in ("cache_hit", "cache_miss"):
            assert after["inference_stats"][k].get("count", 0) == \
                before["inference_stats"][k].get("count", 0)
        got = shm.get_contents_as_numpy(handle, np.float32, [1, 10])
        assert abs(float(got.sum()) - 1.0) < 1e-4
        c.unregister_system_shared_memory("cache_out")
    finally:
        shm.destroy_shared_memory_region(handle)
    assert "response_cache is enabled, but a decoupled model is never cached" in server.text()


def test_tenants_never_share_entries_unless_the_owner_opts_in(tmp_path):
    repo = tmp_path / "team_a"
    repo.mkdir()
    write_mlp(repo, "private_mlp")
    write_mlp(repo, "shared_mlp", share=True)
    tenants = write_tenants(tmp_path / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo]},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([repo], "--tenants", tenants, "--cache-config", "local,size=100000").start()
    try:
        _, body = mlp_body(5)
        for model, ops_hits in (("private_mlp", 0), ("shared_mlp", 1)):
            url = f"{s.base}/v2/models/{model}/infer"
            a = requests.post(url, json=body, headers=bearer(KEY_A), timeout=10)
            ops = requests.post(url, json=body, headers=bearer(KEY_OPS), timeout=10)
            assert a.status_code == 200 and ops.status_code == 200, (a.text, ops.text)
            assert a.json()["outputs"] == ops.json()["outputs"]
            st = stats(s.base, model, bearer(KEY_OPS))["inference_stats"]
            assert st["cache_hit"].get("count", 0) == ops_hits, model
            # team-a's second request hits its own entry either way.
            requests.post(url, json=body, headers=bearer(KEY_A), timeout=10)
            st = stats(s.base, model, bearer(KEY_OPS))["inference_stats"]
            assert st["cache_hit"]["count"] == ops_hits + 1, model
    finally:
        assert s.stop() == 0, s.text()[-3000:]
