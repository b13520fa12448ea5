"""Tenancy, first part (issue 7): the tenants file, `mmserve hash-key`, API
keys on HTTP and gRPC (401 / UNAUTHENTICATED), the admin role for the
shared-memory API, open mode, and reloading the file on SIGHUP."""
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

from conftest import EXAMPLES, Server, binary

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


def test_shared_memory_api_is_for_admins(tenants_server):
    base = tenants_server.base
    r = requests.get(base + "/v2/systemsharedmemory/status", headers=bearer(KEY_A))
    assert r.status_code == 403 and "admin" in r.json()["error"], r.text
    r = requests.post(base + "/v2/systemsharedmemory/region/r/register", headers=bearer(KEY_A),
                      json={"key": "/x", "offset": 0, "byte_size": 16})
    assert r.status_code == 403
    r = requests.get(base + "/v2/systemsharedmemory/status", headers=bearer(KEY_OPS))
    assert r.status_code == 200 and r.json() == []
    g = grpcclient.InferenceServerClient(tenants_server.grpc_url)
    with pytest.raises(InferenceServerException) as e:
        g.get_system_shared_memory_status(headers={"authorization": f"Bearer {KEY_A}"})
    assert "PERMISSION_DENIED" in str(e.value.status()), e.value
    g.get_system_shared_memory_status(headers={"authorization": f"Bearer {KEY_OPS}"})


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


def wait_for_log(server, text, count=1, deadline_s=30):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if server.text().count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"'{text}' not logged {count} times:\n" + server.text()[-3000:])


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
                          str(path), "--http-port", "0", "--grpc-port", "0"],
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
    # Once it has completed the slot is free again.
    echo = {"inputs": [{"name": "COMMAND", "datatype": "INT64", "shape": [2], "data": [0, 0]},
                       {"name": "INPUT", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    assert requests.post(url, headers=bearer("narrow-key-0123456789"), json=echo).status_code == 200
