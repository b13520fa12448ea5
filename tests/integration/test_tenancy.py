"""Tenancy, first part (issue 7): the tenants file, `mmserve hash-key`, API
keys on HTTP and gRPC (401 / UNAUTHENTICATED), the shared-memory API per
tenant, open mode, and reloading the file on SIGHUP."""
import hashlib
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, Server, binary, wait_for_log

KEY_A = "team-a-key-0123456789abcdef"
KEY_OPS = "ops-key-0123456789abcdef0123"


def stored(key, salt=None):
    """The stored form of `key`, made here the way the server checks it."""
    salt = salt or os.urandom(16)
    return "sha256$" + salt.hex() + "$" + hashlib.sha256(salt + key.encode()).hexdigest()


def write_tenants(path, tenants):
    lines = ["tenants:"]
    for t in tenants:
        lines.append(f"  - id: {t['id']}")
        lines.append("    api_keys: [" + ", ".join(f"'{stored(k)}'" for k in t["keys"]) + "]")
        if t.get("repositories"):
            lines.append("    repositories: [" + ", ".join(map(str, t["repositories"])) + "]")
        if t.get("role"):
            lines.append(f"    role: {t['role']}")
        if t.get("weight"):
            lines.append(f"    weight: {t['weight']}")
        if t.get("quotas"):
            lines.append("    quotas: {" + ", ".join(f"{k}: {v}" for k, v in t["quotas"].items())
                         + "}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def tenants_server(tmp_path_factory):
    path = write_tenants(tmp_path_factory.mktemp("tenants") / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [EXAMPLES]},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([EXAMPLES], "--tenants", path).start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def add_sub_inputs(module):
    a = np.arange(4, dtype=np.float32)
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a * 10)
    return inputs, a + a * 10


def test_hash_key_prints_a_fresh_salted_hash_each_time():
    outs = [subprocess.run([str(binary()), "hash-key", KEY_A], capture_output=True, text=True,
                           timeout=60) for _ in range(2)]
    hashes = []
    for out in outs:
        assert out.returncode == 0, out.stderr
        h = out.stdout.strip()
        assert re.fullmatch(r"sha256\$[0-9a-f]{32}\$[0-9a-f]{64}", h), h
        assert KEY_A not in out.stdout + out.stderr
        salt = bytes.fromhex(h.split("$")[1])
        assert h == stored(KEY_A, salt)  # SHA-256(salt || key): other tools can make them
        hashes.append(h)
    assert hashes[0] != hashes[1]
    short = subprocess.run([str(binary()), "hash-key", "abc"], capture_output=True, text=True,
                           timeout=60)
    assert short.returncode == 0 and "short" in short.stderr
    usage = subprocess.run([str(binary()), "hash-key"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage: mmserve hash-key SECRET" in usage.stderr


def test_open_mode_says_so_and_asks_for_no_key():
    s = Server([EXAMPLES]).start()
    try:
        assert "runs open" in s.text()
        client = httpclient.InferenceServerClient(s.url)
        inputs, want = add_sub_inputs(httpclient)
        np.testing.assert_array_equal(client.infer("add_sub", inputs).as_numpy("OUTPUT0"), want)
        assert requests.get(f"{s.base}/v2/systemsharedmemory/status",
                            headers=bearer("anything")).status_code == 200
    finally:
        assert s.stop() == 0


def test_http_asks_every_endpoint_but_health_for_a_valid_key(tenants_server):
    base = tenants_server.base
    assert "needs an API key" in tenants_server.text()
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert requests.get(base + path).status_code == 200
    body = b'{"inputs":[]}'
    for method, path in (("GET", "/v2"), ("GET", "/v2/models/add_sub"),
                         ("GET", "/v2/models/add_sub/config"),
                         ("GET", "/v2/models/add_sub/ready"),
                         ("POST", "/v2/models/add_sub/infer"), ("POST", "/v2/repository/index"),
                         ("GET", "/v2/systemsharedmemory/status"),
                         ("GET", "/v2/models/no_such_model")):
        for headers in ({}, bearer("wrong-key"), {"Authorization": f"Basic {KEY_A}"},
                        {"Authorization": "Bearer"}, bearer(KEY_A + "x")):
            r = requests.request(method, base + path, headers=headers, data=body)
            assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
            assert "Authorization: Bearer" in r.json()["error"]
    # The right key gets through, with tritonclient as a user would.
    client = httpclient.InferenceServerClient(tenants_server.url)
    assert client.is_server_live()
    with pytest.raises(InferenceServerException):
        client.get_model_metadata("add_sub")
    assert client.get_model_metadata("add_sub", headers=bearer(KEY_A))["name"] == "add_sub"
    inputs, want = add_sub_inputs(httpclient)
    result = client.infer("add_sub", inputs, headers=bearer(KEY_A))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), want)
    # Case of the scheme and spaces around the key do not matter.
    r = requests.get(base + "/v2/models/add_sub", headers={"Authorization": f"bearer  {KEY_A} "})
    assert r.status_code == 200


def test_shared_memory_api_is_per_tenant(tenants_server):
    # Every tenant may use the shared-memory API, on its own regions only
    # (tests/adversarial/test_shm.py goes further).
    import tritonclient.utils.shared_memory as shm

    base = tenants_server.base
    key = f"/mmserve_tenancy_{os.getpid()}"
    handle = shm.create_shared_memory_region("r", key, 16)
    try:
        r = requests.post(base + "/v2/systemsharedmemory/region/r/register", headers=bearer(KEY_A),
                          json={"key": key, "offset": 0, "byte_size": 16})
        assert r.status_code == 200, r.text
        r = requests.get(base + "/v2/systemsharedmemory/status", headers=bearer(KEY_A))
        assert r.status_code == 200 and [x["name"] for x in r.json()] == ["r"], r.text
        r = requests.get(base + "/v2/systemsharedmemory/status", headers=bearer(KEY_OPS))
        assert r.status_code == 200 and r.json() == [], r.text
        g = grpcclient.InferenceServerClient(tenants_server.grpc_url)
        status = g.get_system_shared_memory_status(headers={"authorization": f"Bearer {KEY_A}"})
        assert list(status.regions) == ["r"]
        status = g.get_system_shared_memory_status(headers={"authorization": f"Bearer {KEY_OPS}"})
        assert list(status.regions) == []
        r = requests.post(base + "/v2/systemsharedmemory/unregister", headers=bearer(KEY_A))
        assert r.status_code == 200, r.text
        r = requests.get(base + "/v2/systemsharedmemory/status", headers=bearer(KEY_A))
        assert r.json() == [], r.text
    finally:
        shm.destroy_shared_memory_region(handle)


def test_grpc_asks_for_a_valid_key(tenants_server):
    g = grpcclient.InferenceServerClient(tenants_server.grpc_url)
    assert g.is_server_live() and g.is_server_ready()
    for headers in (None, {"authorization": "Bearer wrong"}, {"authorization": KEY_A}):
        for call in (lambda: g.get_model_metadata("add_sub", headers=headers),
                     lambda: g.get_server_metadata(headers=headers),
                     lambda: g.get_model_repository_index(headers=headers),
                     lambda: g.infer("add_sub", add_sub_inputs(grpcclient)[0], headers=headers)):
            with pytest.raises(InferenceServerException) as e:
                call()
            assert "UNAUTHENTICATED" in str(e.value.status()), e.value
            assert "Authorization: Bearer" in e.value.message()
    ok = {"authorization": f"Bearer {KEY_A}"}
    assert g.get_model_metadata("add_sub", headers=ok).name == "add_sub"
    inputs, want = add_sub_inputs(grpcclient)
    np.testing.assert_array_equal(g.infer("add_sub", inputs, headers=ok).as_numpy("OUTPUT0"), want)


def test_grpc_stream_without_a_key_is_refused(tenants_server):
    results = []
    g = grpcclient.InferenceServerClient(tenants_server.grpc_url)
    g.start_stream(callback=lambda result, error: results.append(error or result))
    inputs, _ = add_sub_inputs(grpcclient)
    try:
        g.async_stream_infer("add_sub", inputs)
    except InferenceServerException:
        pass  # the stream was refused as it opened, before this request
    end = time.monotonic() + 30
    while not results and time.monotonic() < end:
        time.sleep(0.05)
    g.stop_stream()
    assert results and isinstance(results[0], InferenceServerException), results
    assert "UNAUTHENTICATED" in str(results[0].status()), results[0]
    assert "Authorization: Bearer" in results[0].message()

    ok = []
    g = grpcclient.InferenceServerClient(tenants_server.grpc_url)
    g.start_stream(callback=lambda result, error: ok.append(error or result),
                   headers={"authorization": f"Bearer {KEY_A}"})
    g.async_stream_infer("add_sub", inputs)
    end = time.monotonic() + 30
    while not ok and time.monotonic() < end:
        time.sleep(0.05)
    g.stop_stream()
    assert ok and not isinstance(ok[0], Exception), ok


def test_sighup_reloads_the_tenants_file_and_keeps_it_when_bad(tmp_path):
    path = write_tenants(tmp_path / "tenants.yaml",
                         [{"id": "first", "keys": ["key-one-0123456789"], "repositories": [EXAMPLES]}])
    s = Server([EXAMPLES], "--tenants", path).start()
    try:
        url = f"{s.base}/v2/models/add_sub"
        assert requests.get(url, headers=bearer("key-one-0123456789")).status_code == 200
        session = requests.Session()  # a kept-alive connection survives the reload
        assert session.get(url, headers=bearer("key-one-0123456789")).status_code == 200
        write_tenants(path, [{"id": "second", "keys": ["key-two-0123456789"],
                              "repositories": [EXAMPLES]}])
        s.proc.send_signal(signal.SIGHUP)
        wait_for_log(s, "tenants reloaded")
        assert session.get(url, headers=bearer("key-two-0123456789")).status_code == 200
        assert requests.get(url, headers=bearer("key-one-0123456789")).status_code == 401
        path.write_text("tenants:\n  - id: broken\n")
        s.proc.send_signal(signal.SIGHUP)
        wait_for_log(s, "was not reloaded")
        assert "tenants[0] (broken): no api_keys" in s.text()
        assert requests.get(url, headers=bearer("key-two-0123456789")).status_code == 200
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_a_bad_tenants_file_stops_the_server_naming_the_fault(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text("tenants:\n  - id: a\n    api_keys: ['plain-key']\n    repositories: [/m]\n")
    out = subprocess.run([str(binary()), "--model-repository", str(EXAMPLES), "--tenants",
                          str(path), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert str(path) in text and "tenants[0] (a).api_keys[0]" in text and "hash-key" in text, text


# ------------------------------------------------------------- namespaces

KEY_B = "team-b-key-0123456789abcdef"


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory):
    """team-a owns add_sub, team-b mlp_classifier and string_int (loaded on
    demand), ops (admin) sees all; explicit mode, everything loaded at start."""
    import shutil
    root = tmp_path_factory.mktemp("namespaces")
    repo_a, repo_b = root / "a", root / "b"
    repo_a.mkdir()
    repo_b.mkdir()
    shutil.copytree(EXAMPLES / "add_sub", repo_a / "add_sub")
    shutil.copytree(EXAMPLES / "mlp_classifier", repo_b / "mlp_classifier")
    shutil.copytree(EXAMPLES / "string_int", repo_b / "string_int")
    path = write_tenants(root / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]},
        # Another spelling of the same folder names the same repository.
        {"id": "team-b", "keys": [KEY_B], "repositories": [f"{repo_b}/./"]},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([repo_a, repo_b], "--tenants", path, "--model-control-mode", "explicit",
               "--load-model", "add_sub", "--load-model", "mlp_classifier",
               "--load-on-demand", "true").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def index_names(base, key):
    r = requests.post(base + "/v2/repository/index", headers=bearer(key), json={})
    assert r.status_code == 200, r.text
    return sorted({m["name"] for m in r.json()})


def test_each_tenant_indexes_only_its_own_models(namespaces):
    base = namespaces.base
    assert index_names(base, KEY_A) == ["add_sub"]
    assert index_names(base, KEY_B) == ["mlp_classifier", "string_int"]
    assert index_names(base, KEY_OPS) == ["add_sub", "mlp_classifier", "string_int"]
    g = grpcclient.InferenceServerClient(namespaces.grpc_url)
    index = g.get_model_repository_index(headers={"authorization": f"Bearer {KEY_B}"})
    assert sorted({m.name for m in index.models}) == ["mlp_classifier", "string_int"]


def same_answer(base, key, method, path_of, foreign, missing="zz_no_such_model", body=None):
    """The answer about `foreign` is the answer about a model that does not exist."""
    a = requests.request(method, base + path_of(foreign), headers=bearer(key), data=body)
    b = requests.request(method, base + path_of(missing), headers=bearer(key), data=body)
    assert a.status_code == b.status_code, (path_of(foreign), a.status_code, b.status_code)
    assert a.text.replace(foreign, "M") == b.text.replace(missing, "M"), (a.text, b.text)
    return a


def test_another_tenants_model_is_answered_as_if_it_did_not_exist(namespaces):
    base = namespaces.base
    infer = json_infer_body()
    for path_of, method, body in (
            (lambda m: f"/v2/models/{m}", "GET", None),
            (lambda m: f"/v2/models/{m}/versions/1", "GET", None),
            (lambda m: f"/v2/models/{m}/config", "GET", None),
            (lambda m: f"/v2/models/{m}/ready", "GET", None),
            (lambda m: f"/v2/models/{m}/infer", "POST", infer),
            (lambda m: f"/v2/models/{m}/versions/1/infer", "POST", infer),
            (lambda m: f"/v2/repository/models/{m}/load", "POST", "{}"),
            (lambda m: f"/v2/repository/models/{m}/unload", "POST", "{}")):
        r = same_answer(base, KEY_A, method, path_of, "mlp_classifier", body=body)
        assert r.status_code in (400, 404), (path_of("x"), r.status_code, r.text)
        # string_int is team-b's and not loaded: a load on demand must not start for team-a.
        same_answer(base, KEY_A, method, path_of, "string_int", body=body)
    # The owner and the admin do see it.
    assert requests.get(base + "/v2/models/mlp_classifier", headers=bearer(KEY_B)).status_code == 200
    assert requests.get(base + "/v2/models/mlp_classifier",
                        headers=bearer(KEY_OPS)).status_code == 200
    assert requests.get(base + "/v2/models/add_sub", headers=bearer(KEY_B)).status_code == 404
    # Nothing team-a asked for loaded team-b's string_int.
    r = requests.post(base + "/v2/repository/index", headers=bearer(KEY_OPS), json={})
    states = {m["name"]: m.get("state") for m in r.json()}
    assert states["string_int"] != "READY", states


def json_infer_body():
    import json
    return json.dumps({"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32",
                                   "data": [1, 2, 3, 4]}]})


def test_grpc_hides_another_tenants_model_the_same_way(namespaces):
    g = grpcclient.InferenceServerClient(namespaces.grpc_url)
    a = {"authorization": f"Bearer {KEY_A}"}
    errors = []
    for name in ("mlp_classifier", "zz_no_such_model"):
        with pytest.raises(InferenceServerException) as e:
            g.get_model_metadata(name, headers=a)
        errors.append((str(e.value.status()), e.value.message().replace(name, "M")))
    assert errors[0] == errors[1] and "NOT_FOUND" in errors[0][0], errors
    assert not g.is_model_ready("mlp_classifier", headers=a)
    assert g.is_model_ready("mlp_classifier", headers={"authorization": f"Bearer {KEY_B}"})
    inputs, want = add_sub_inputs(grpcclient)
    np.testing.assert_array_equal(g.infer("add_sub", inputs, headers=a).as_numpy("OUTPUT0"), want)


def test_a_tenant_loads_and_unloads_its_own_models(namespaces):
    base = namespaces.base
    r = requests.post(base + "/v2/repository/models/string_int/load", headers=bearer(KEY_B),
                      json={})
    assert r.status_code == 200, r.text
    assert requests.get(base + "/v2/models/string_int/ready", headers=bearer(KEY_B)).status_code == 200
    r = requests.post(base + "/v2/repository/models/string_int/unload", headers=bearer(KEY_B),
                      json={})
    assert r.status_code == 200, r.text
    assert requests.get(base + "/v2/models/string_int/ready", headers=bearer(KEY_B)).status_code == 400


def test_names_that_try_to_leave_the_repository_are_refused(namespaces):
    base = namespaces.base
    for name in ("..", "%2e%2e", "..%2Fb%2Fmlp_classifier", "a%00b", "%0a", "x" * 300):
        for key in (KEY_A, KEY_OPS):
            r = requests.post(f"{base}/v2/repository/models/{name}/load", headers=bearer(key),
                              json={})
            assert r.status_code in (400, 404), (name, r.status_code, r.text)
            if name == "..":
                continue  # the client itself folds "/v2/models/.." into "/v2"
            r = requests.get(f"{base}/v2/models/{name}", headers=bearer(key))
            assert r.status_code in (400, 404), (name, r.status_code, r.text)
    assert "mlp_classifier" not in index_names(base, KEY_A)


# ------------------------------------------------------------------ quotas

CHAOS_IN_PROCESS = """name: "chaos"
platform: "mmserve_chaos"
mmserve { isolation: IN_PROCESS }
"""


@pytest.fixture(scope="module")
def quotas(tmp_path_factory):
    """slow: 1 request per 1000 s with a burst of 3; narrow: 1 request at a
    time; free: no quota; all three share the example models and a chaos
    model (hangs on command)."""
    import shutil
    root = tmp_path_factory.mktemp("quotas")
    repos = {}
    for tenant in ("slow", "narrow", "free"):
        repos[tenant] = root / tenant
        repos[tenant].mkdir()
        model = repos[tenant] / f"add_sub_{tenant}"
        shutil.copytree(EXAMPLES / "add_sub", model)
        config = model / "config.pbtxt"
        config.write_text(config.read_text().replace('"add_sub"', f'"add_sub_{tenant}"'))
    (repos["narrow"] / "chaos" / "1").mkdir(parents=True)
    (repos["narrow"] / "chaos" / "config.pbtxt").write_text(CHAOS_IN_PROCESS)
    path = write_tenants(root / "tenants.yaml", [
        {"id": "slow", "keys": ["slow-key-0123456789"], "repositories": [repos["slow"]],
         "quotas": {"requests_per_second": 0.001, "burst": 3}},
        {"id": "narrow", "keys": ["narrow-key-0123456789"], "repositories": [repos["narrow"]],
         "quotas": {"max_concurrency": 1}},
        {"id": "free", "keys": ["free-key-0123456789"], "repositories": [repos["free"]]},
    ])
    s = Server(list(repos.values()), "--tenants", path, "--enable-test-backends").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def add_sub_json(model):
    return {"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                       {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}


def test_over_the_rate_quota_is_429_with_retry_after(quotas):
    url = f"{quotas.base}/v2/models/add_sub_slow/infer"
    answers = [requests.post(url, headers=bearer("slow-key-0123456789"), json=add_sub_json(0))
               for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429], [a.text for a in answers]
    refused = answers[3]
    # One request per 1000 s: the next one is due in about 1000 s.
    assert 990 <= int(refused.headers["Retry-After"]) <= 1000, refused.headers
    assert "tenant 'slow' is over its rate quota" in refused.json()["error"]
    # Over gRPC the same quota answers RESOURCE_EXHAUSTED.
    g = grpcclient.InferenceServerClient(quotas.grpc_url)
    inputs, _ = add_sub_inputs(grpcclient)
    with pytest.raises(InferenceServerException) as e:
        g.infer("add_sub_slow", inputs, headers={"authorization": "Bearer slow-key-0123456789"})
    assert "RESOURCE_EXHAUSTED" in str(e.value.status()) and "rate quota" in e.value.message()
    # Another tenant is not held to it; metadata calls are not counted.
    free = f"{quotas.base}/v2/models/add_sub_free/infer"
    for _ in range(5):
        r = requests.post(free, headers=bearer("free-key-0123456789"), json=add_sub_json(0))
        assert r.status_code == 200, r.text
    r = requests.get(f"{quotas.base}/v2/models/add_sub_slow",
                     headers=bearer("slow-key-0123456789"))
    assert r.status_code == 200


def test_over_the_concurrency_quota_is_429(quotas):
    import concurrent.futures
    url = f"{quotas.base}/v2/models/chaos/infer"
    # Two requests at once; each would hang 3 s: whichever arrives second
    # finds the tenant's one slot taken.
    body = {"inputs": [{"name": "COMMAND", "datatype": "INT64", "shape": [2], "data": [3, 3000]},
                       {"name": "INPUT", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda _: requests.post(url, headers=bearer("narrow-key-0123456789"), json=body,
                                    timeout=60), range(2)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 429], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert "max_concurrency" in refused.json()["error"]
    # Once its answer has been written the slot is free again (the server
    # learns of the write a moment after the client has the answer).
    echo = {"inputs": [{"name": "COMMAND", "datatype": "INT64", "shape": [2], "data": [0, 0]},
                       {"name": "INPUT", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    end = time.monotonic() + 30
    while (code := requests.post(url, headers=bearer("narrow-key-0123456789"),
                                 json=echo).status_code) == 429 and time.monotonic() < end:
        time.sleep(0.05)
    assert code == 200


# ------------------------------------------------------------------- usage

@pytest.fixture(scope="module")
def usage(tmp_path_factory):
    """team-a owns add_sub, team-b add_sub_b (1 request per 1000 s, burst 2),
    ops (admin) sees all."""
    import shutil
    root = tmp_path_factory.mktemp("usage")
    repo_a, repo_b = root / "a", root / "b"
    shutil.copytree(EXAMPLES / "add_sub", repo_a / "add_sub")
    shutil.copytree(EXAMPLES / "add_sub", repo_b / "add_sub_b")
    config = repo_b / "add_sub_b" / "config.pbtxt"
    config.write_text(config.read_text().replace('"add_sub"', '"add_sub_b"'))
    path = write_tenants(root / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]},
        {"id": "team-b", "keys": [KEY_B], "repositories": [repo_b],
         "quotas": {"requests_per_second": 0.001, "burst": 2}},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([repo_a, repo_b], "--tenants", path).start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def usage_of(base, key):
    r = requests.get(base + "/v2/usage", headers=bearer(key))
    assert r.status_code == 200, r.text
    return {t["tenant"]: t for t in r.json()["tenants"]}


def test_usage_adds_up_exactly_to_the_requests_sent(usage):
    base = usage.base
    h = httpclient.InferenceServerClient(usage.url)
    g = grpcclient.InferenceServerClient(usage.grpc_url)
    inputs_h, want = add_sub_inputs(httpclient)
    inputs_g, _ = add_sub_inputs(grpcclient)
    a = bearer(KEY_A)  # (tritonclient adds headers to the dict it is given: copies)
    # team-a: 5 HTTP and 3 gRPC successes (2 x 16 bytes in, 2 x 16 out each),
    # one asking for OUTPUT0 only (16 out) ...
    for _ in range(5):
        np.testing.assert_array_equal(h.infer("add_sub", inputs_h, headers=dict(a)).as_numpy("OUTPUT0"),
                                      want)
    for _ in range(3):
        g.infer("add_sub", inputs_g, headers={"authorization": f"Bearer {KEY_A}"})
    only0 = [httpclient.InferRequestedOutput("OUTPUT0")]
    h.infer("add_sub", inputs_h, outputs=only0, headers=dict(a))
    # ... 2 failures at the model (a wrong shape), ...
    bad = {"inputs": [{"name": "INPUT0", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]},
                      {"name": "INPUT1", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}
    for _ in range(2):
        r = requests.post(base + "/v2/models/add_sub/infer", headers=a, json=bad)
        assert r.status_code == 400, r.text
    # ... and 3 that reach no model: unknown, another tenant's, unknown over gRPC.
    for model in ("zz_no_such_model", "add_sub_b"):
        r = requests.post(base + f"/v2/models/{model}/infer", headers=a, json=add_sub_json(0))
        assert r.status_code in (400, 404), r.text
    with pytest.raises(InferenceServerException):
        g.infer("zz_no_such_model", inputs_g, headers={"authorization": f"Bearer {KEY_A}"})
    # team-b: 2 admitted by its rate quota, 2 refused.
    codes = [requests.post(base + "/v2/models/add_sub_b/infer", headers=bearer(KEY_B),
                           json=add_sub_json(0)).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]

    # Output bytes are billed once their reply is written, which the server
    # learns a moment after the client has read it: wait for that.
    end = time.monotonic() + 30
    while usage_of(base, KEY_A)["team-a"]["models"][0]["bytes_out"] < 8 * 32 + 16:
        assert time.monotonic() < end, usage_of(base, KEY_A)
        time.sleep(0.05)
    mine = usage_of(base, KEY_A)
    assert list(mine) == ["team-a"]  # a tenant sees its own usage only
    team_a = mine["team-a"]
    assert team_a["refused"] == 3
    [add_sub] = team_a["models"]  # nothing is recorded under made-up names
    assert add_sub["name"] == "add_sub"
    assert add_sub["requests"] == 11 and add_sub["failures"] == 2, add_sub
    assert add_sub["bytes_in"] == 9 * 32
    assert add_sub["bytes_out"] == 8 * 32 + 16
    assert add_sub["requests"] + team_a["refused"] == 14  # every request sent
    assert add_sub["compute_ns"] > 0 and add_sub["queue_ns"] >= 0
    assert add_sub["compute_seconds"] == pytest.approx(add_sub["compute_ns"] / 1e9)
    assert add_sub["queue_seconds"] == pytest.approx(add_sub["queue_ns"] / 1e9)

    everyone = usage_of(base, KEY_OPS)  # the admin sees every tenant
    assert sorted(everyone) == ["ops", "team-a", "team-b"]
    assert everyone["team-a"]["models"] == team_a["models"]
    team_b = everyone["team-b"]
    assert team_b["refused"] == 2
    assert [(m["name"], m["requests"], m["failures"]) for m in team_b["models"]] == [
        ("add_sub_b", 2, 0)]
    assert everyone["ops"] == {"tenant": "ops", "refused": 0, "models": []}
    assert usage_of(base, KEY_B).keys() == {"team-b"}
    # Without a key, nothing; the path takes GET only.
    assert requests.get(base + "/v2/usage").status_code == 401
    assert requests.post(base + "/v2/usage", headers=bearer(KEY_OPS)).status_code == 405


def test_a_models_fair_share_tenant_is_its_repositorys_owner_with_the_files_weight(tmp_path):
    import shutil
    repo_a, repo_open = tmp_path / "a", tmp_path / "open"
    shutil.copytree(EXAMPLES / "add_sub", repo_a / "add_sub")
    # A model cannot claim another tenant's share through mmserve.tenant ...
    config = repo_a / "add_sub" / "config.pbtxt"
    config.write_text(config.read_text() + 'mmserve { tenant: "team-b" }\n')
    # ... while a model in no tenant's repository keeps the one it names.
    shutil.copytree(EXAMPLES / "add_sub", repo_open / "named")
    config = repo_open / "named" / "config.pbtxt"
    config.write_text(config.read_text().replace('"add_sub"', '"named"')
                      + 'mmserve { tenant: "team-b" }\n')
    path = write_tenants(tmp_path / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a], "weight": 3},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([repo_a, repo_open], "--tenants", path).start()
    try:
        text = s.text()
        assert "model 'add_sub' version 1 is READY" in text
        assert "fair share of tenant 'team-a')" in text.split("model 'add_sub' version 1 is READY")[1].split("\n")[0]
        assert "fair share of tenant 'team-b')" in text.split("model 'named' version 1 is READY")[1].split("\n")[0]
        assert "tenant 'team-a' has weight 3 in the execution slots' fair share" in text
        # A reload applies the file's new weights.
        write_tenants(path, [
            {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a], "weight": 0.5},
            {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
        ])
        s.proc.send_signal(signal.SIGHUP)
        wait_for_log(s, "tenant 'team-a' has weight 0.5 in the execution slots' fair share")
        client = httpclient.InferenceServerClient(s.url)
        inputs, want = add_sub_inputs(httpclient)
        out = client.infer("add_sub", inputs, headers=bearer(KEY_A))
        np.testing.assert_array_equal(out.as_numpy("OUTPUT0"), want)
    finally:
        assert s.stop() == 0, s.text()[-3000:]


# ------------------------------------------------------------ model quotas

def add_sub_copy(repo, name, footprint):
    import shutil
    shutil.copytree(EXAMPLES / "add_sub", repo / name)
    config = repo / name / "config.pbtxt"
    config.write_text(config.read_text().replace('"add_sub"', f'"{name}"')
                      + f"mmserve {{ memory_footprint_bytes: {footprint} }}\n")


def infer_ok(base, key, model):
    r = requests.post(f"{base}/v2/models/{model}/infer", headers=bearer(key),
                      json=add_sub_json(0), timeout=60)
    assert r.status_code == 200, (model, r.text)


def states(base, key):
    r = requests.post(base + "/v2/repository/index", headers=bearer(key), json={})
    assert r.status_code == 200, r.text
    return {m["name"]: (m.get("state"), m.get("reason", "")) for m in r.json()}


def test_model_quotas_evict_the_tenants_own_models_and_spare_others_shares(tmp_path):
    """A budget of 3 MB; team-a may hold 1 model, team-b 1.5 MB (its share),
    team-c has no quota. Each model declares 1 MB; all load on demand."""
    mb = 1000000
    repos = {t: tmp_path / t for t in ("a", "b", "c")}
    for t, repo in repos.items():
        for i in (1, 2, 3):
            add_sub_copy(repo, f"{t}{i}", mb)
    key_c = "team-c-key-0123456789abcdef"
    path = write_tenants(tmp_path / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repos["a"]],
         "quotas": {"max_loaded_models": 1}},
        {"id": "team-b", "keys": [KEY_B], "repositories": [repos["b"]],
         "quotas": {"memory_bytes": "1.5MB"}},
        {"id": "team-c", "keys": [key_c], "repositories": [repos["c"]]},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server(list(repos.values()), "--tenants", path, "--model-control-mode", "explicit",
               "--load-on-demand", "true", "--model-memory-budget", str(3 * mb)).start()
    try:
        base = s.base
        # team-a: one model at a time; its second request evicts its first.
        infer_ok(base, KEY_A, "a1")
        infer_ok(base, KEY_A, "a2")
        a = states(base, KEY_A)
        assert a["a1"][0] == "UNAVAILABLE" and "quota max_loaded_models (1) of tenant 'team-a'" in a["a1"][1], a
        assert a["a2"][0] == "READY"
        # team-b: 1.5 MB holds one 1 MB model; the next replaces it.
        infer_ok(base, KEY_B, "b1")
        infer_ok(base, KEY_B, "b2")
        b = states(base, KEY_B)
        assert b["b1"][0] == "UNAVAILABLE" and "quota memory_bytes (1.43 MiB) of tenant 'team-b'" in b["b1"][1], b
        # Loaded now: a2 (team-a) and b2 (team-b's share). team-c, without a
        # share, fills the budget and then makes room from its own models.
        infer_ok(base, key_c, "c1")
        infer_ok(base, key_c, "c2")
        everyone = states(base, KEY_OPS)
        assert everyone["c1"][0] == "UNAVAILABLE" and "memory budget" in everyone["c1"][1]
        assert everyone["a2"][0] == "READY" and everyone["b2"][0] == "READY", everyone
        # The repository API's loads are held to the same quotas.
        r = requests.post(base + "/v2/repository/models/b3/load", headers=bearer(KEY_B), json={})
        assert r.status_code == 200, r.text  # b2 is idle: it goes
        assert states(base, KEY_B)["b2"][0] == "UNAVAILABLE"
    finally:
        assert s.stop() == 0, s.text()[-3000:]
