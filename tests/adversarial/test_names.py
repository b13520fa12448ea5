"""Names are per tenant (issue 17, defect 10) and loads are fair across
tenants (defect 6, the held loader thread).

team-a and team-b each have a model called `m`: team-a's is add_sub, team-b's
is mlp_classifier. Each loads and serves its own, over HTTP and gRPC; another
tenant's repositories never change an answer, and no answer shows another
tenant's paths. A slow warmup of team-a's never holds team-b's loads or
on-demand requests, and SIGTERM completes while it runs.
"""
import json
import os
import struct
import threading
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import Server
from hostile import KEY_A, KEY_B, KEY_OPS, bearer, copy_model, grpc_auth, write_tenants


def paths_of(repo):
    return {str(repo), os.path.realpath(repo)}


@pytest.fixture(scope="module")
def same_name(tmp_path_factory):
    """team-a: m (add_sub) and n (add_sub, a name only team-a has); team-b: m
    (mlp_classifier) and k (add_sub); ops: admin. Explicit mode, on demand."""
    root = tmp_path_factory.mktemp("names")
    repo_a, repo_b = root / "a", root / "b"
    repo_a.mkdir()
    repo_b.mkdir()
    copy_model("add_sub", repo_a, "m")
    copy_model("add_sub", repo_a, "n")
    copy_model("mlp_classifier", repo_b, "m")
    copy_model("add_sub", repo_b, "k")
    path = write_tenants(root / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]},
        {"id": "team-b", "keys": [KEY_B], "repositories": [repo_b]},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([repo_a, repo_b], "--tenants", path, "--model-control-mode", "explicit",
               "--load-on-demand", "true").start()
    s.repo_a, s.repo_b = repo_a, repo_b
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def add_sub_body():
    return {"inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [10, 20, 30, 40]}]}


def mlp_body():
    return {"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                        "data": [0.5] * 16}]}


def post(base, path, key, body=None):
    return requests.post(base + path, headers=bearer(key), json=body if body is not None else {},
                         timeout=60)


def get(base, path, key):
    return requests.get(base + path, headers=bearer(key), timeout=60)


def test_each_tenant_loads_and_serves_its_own_m_over_http(same_name):
    base = same_name.base
    # Before: team-b's load of its own m answered 409 naming team-a's path.
    for key in (KEY_A, KEY_B):
        r = post(base, "/v2/repository/models/m/load", key)
        assert r.status_code == 200, r.text
    md_a = get(base, "/v2/models/m", KEY_A).json()
    md_b = get(base, "/v2/models/m", KEY_B).json()
    assert [i["name"] for i in md_a["inputs"]] == ["INPUT0", "INPUT1"], md_a
    assert [i["name"] for i in md_b["inputs"]] == ["input"], md_b
    assert get(base, "/v2/models/m/ready", KEY_A).status_code == 200
    assert get(base, "/v2/models/m/versions/1/ready", KEY_B).status_code == 200
    r = post(base, "/v2/models/m/infer", KEY_A, add_sub_body())
    assert r.status_code == 200, r.text
    assert {o["name"]: o["data"] for o in r.json()["outputs"]}["OUTPUT0"] == [11, 22, 33, 44]
    for _ in range(2):
        r = post(base, "/v2/models/m/infer", KEY_B, mlp_body())
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["name"] == "probabilities" and out["shape"] == [1, 10], out
        assert abs(sum(out["data"]) - 1) < 1e-3  # softmax: team-b's model, not team-a's
    # Each tenant's statistics are its own model's: 1 request for a, 2 for b.
    for key, count in ((KEY_A, 1), (KEY_B, 2)):
        stats = get(base, "/v2/models/m/stats", key).json()["model_stats"]
        assert [(s["name"], s["inference_stats"]["success"]["count"]) for s in stats] \
            == [("m", count)], stats
    # The index: one m each, its own.
    for key in (KEY_A, KEY_B):
        index = [e for e in post(base, "/v2/repository/index", key).json() if e["name"] == "m"]
        assert len(index) == 1 and index[0]["state"] == "READY", index
    # team-a unloads its m; team-b's serves on, and after its own unload it
    # loads again on demand.
    assert post(base, "/v2/repository/models/m/unload", KEY_A).status_code == 200
    assert get(base, "/v2/models/m/ready", KEY_A).status_code != 200
    assert post(base, "/v2/models/m/infer", KEY_B, mlp_body()).status_code == 200
    assert post(base, "/v2/repository/models/m/unload", KEY_B).status_code == 200
    r = post(base, "/v2/models/m/infer", KEY_B, mlp_body())
    assert r.status_code == 200, r.text
    assert get(base, "/v2/models/m/ready", KEY_A).status_code != 200  # b's load left a's alone


def test_each_tenant_loads_and_serves_its_own_m_over_grpc(same_name):
    g = grpcclient.InferenceServerClient(same_name.grpc_url)
    a, b = grpc_auth(KEY_A), grpc_auth(KEY_B)
    g.load_model("m", headers=a)
    g.load_model("m", headers=b)
    assert g.is_model_ready("m", headers=a) and g.is_model_ready("m", headers=b)
    assert [i.name for i in g.get_model_metadata("m", headers=a).inputs] == ["INPUT0", "INPUT1"]
    assert [i.name for i in g.get_model_metadata("m", headers=b).inputs] == ["input"]
    x = np.arange(4, dtype=np.float32)
    inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"),
              grpcclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(x * 10)
    np.testing.assert_array_equal(g.infer("m", inputs, headers=a).as_numpy("OUTPUT0"), x * 11)
    mlp = grpcclient.InferInput("input", [1, 16], "FP32")
    mlp.set_data_from_numpy(np.full((1, 16), 0.5, dtype=np.float32))
    probs = g.infer("m", [mlp], headers=b).as_numpy("probabilities")
    assert probs.shape == (1, 10) and abs(float(probs.sum()) - 1) < 1e-3
    stats = g.get_inference_statistics("m", headers=b).model_stats
    assert len(stats) == 1 and stats[0].name == "m"
    names = [m.name for m in g.get_model_repository_index(headers=b).models]
    assert names.count("m") == 1, names


def test_another_tenants_repositories_change_no_answer(same_name):
    """team-a's answers about m (which team-b also has) are its answers about
    n (which only team-a has), on every endpoint, loaded and not."""
    base = same_name.base

    def answers(name):
        out = []
        for method, path, body in (
                ("POST", "/v2/repository/models/{}/load", {}),
                ("GET", "/v2/models/{}", None),
                ("GET", "/v2/models/{}/ready", None),
                ("GET", "/v2/models/{}/versions/7", None),
                ("POST", "/v2/models/{}/infer", add_sub_body()),
                ("POST", "/v2/models/{}/infer", {"inputs": []}),
                ("GET", "/v2/models/{}/stats", None),
                ("GET", "/v2/models/{}/versions/7/stats", None),
                ("POST", "/v2/repository/models/{}/unload", {}),
                ("GET", "/v2/models/{}", None),
                ("POST", "/v2/models/{}/versions/1/infer", add_sub_body()),
                ("POST", "/v2/repository/models/{}/unload", {}),
                ("POST", "/v2/repository/models/{}/load",
                 {"parameters": {"config": "{not json"}})):
            r = requests.request(method, base + path.format(name), headers=bearer(KEY_A),
                                 timeout=60, json=body)
            text = r.text.replace(f"'{name}'", "'M'").replace(f'"{name}"', '"M"')
            if path.endswith("/stats") and r.status_code == 200:
                text = json.dumps([(s["version"], s["inference_stats"]["success"]["count"])
                                   for s in r.json()["model_stats"]])
            out.append((method, path, r.status_code, text))
        return out

    # Fresh statistics for both: unload whatever earlier tests left.
    for name in ("m", "n"):
        post(base, f"/v2/repository/models/{name}/unload", KEY_A)
    got_m, got_n = answers("m"), answers("n")
    for am, an in zip(got_m, got_n):
        if am[1].endswith("/stats") and am[2] == 200:
            continue  # m ran earlier tests' requests; the shape is compared below
        assert am == an, (am, an)
    assert [a[2] for a in got_m] == [a[2] for a in got_n]
    index = {e["name"]: e.get("state") for e in post(base, "/v2/repository/index", KEY_A).json()}
    assert set(index) == {"m", "n"}, index


def test_no_answer_to_team_b_shows_team_a_or_a_conflict(same_name):
    """Every endpoint team-b can reach, about m, k, n (team-a's only) and
    nonsense, over HTTP and gRPC: nothing names team-a's repository, and
    nothing speaks of a conflict."""
    base = same_name.base
    texts = []
    for name in ("m", "k", "n", "zz", "m%2F..%2F..%2Fa", "..."):
        for method, path, body in (
                ("POST", f"/v2/repository/models/{name}/load", {}),
                ("POST", f"/v2/repository/models/{name}/load",
                 {"parameters": {"config": json.dumps({"name": name, "max_batch_size": -4})}}),
                ("GET", f"/v2/models/{name}", None),
                ("GET", f"/v2/models/{name}/config", None),
                ("GET", f"/v2/models/{name}/ready", None),
                ("GET", f"/v2/models/{name}/versions/9", None),
                ("POST", f"/v2/models/{name}/infer", mlp_body()),
                ("POST", f"/v2/models/{name}/infer", add_sub_body()),
                ("POST", f"/v2/models/{name}/versions/9/infer", mlp_body()),
                ("GET", f"/v2/models/{name}/stats", None),
                ("POST", f"/v2/repository/models/{name}/unload", {}),
                ("POST", f"/v2/repository/models/{name}/unload", {})):
            r = requests.request(method, base + path, headers=bearer(KEY_B), timeout=60,
                                 json=body)
            texts.append((path, r.status_code, r.text))
    texts.append(("index", 0, post(base, "/v2/repository/index", KEY_B).text))
    texts.append(("stats", 0, get(base, "/v2/models/stats", KEY_B).text))
    g = grpcclient.InferenceServerClient(same_name.grpc_url)
    b = grpc_auth(KEY_B)
    for name in ("m", "k", "n", "zz"):
        for call in (lambda: g.load_model(name, headers=b),
                     lambda: g.get_model_metadata(name, headers=b),
                     lambda: g.get_model_config(name, headers=b),
                     lambda: g.get_model_metadata(name, "9", headers=b),
                     lambda: g.get_inference_statistics(name, headers=b),
                     lambda: g.unload_model(name, headers=b)):
            try:
                texts.append((name, 0, str(call())))
            except InferenceServerException as e:
                texts.append((name, e.status(), e.message()))
    texts.append(("index", 0, str(g.get_model_repository_index(headers=b))))
    for where, code, text in texts:
        for p in paths_of(same_name.repo_a):
            assert p not in text, (where, code, text)
        lowered = text.lower()
        assert "more than one" not in lowered and "already" not in lowered, (where, text)
        assert code != 409 and code != "StatusCode.ALREADY_EXISTS", (where, code, text)


def test_an_admin_is_told_a_shared_name_is_ambiguous(same_name):
    """The admin sees every repository: a name two tenants use is ambiguous
    for it (409 naming both), a name only one uses is that one."""
    base = same_name.base
    r = get(base, "/v2/models/m", KEY_OPS)
    assert r.status_code == 409, r.text
    assert any(p in r.text for p in paths_of(same_name.repo_a)), r.text
    assert any(p in r.text for p in paths_of(same_name.repo_b)), r.text
    assert post(base, "/v2/repository/models/m/load", KEY_OPS).status_code == 409
    assert post(base, "/v2/repository/models/k/load", KEY_OPS).status_code == 200
    assert post(base, "/v2/models/k/infer", KEY_OPS, add_sub_body()).status_code == 200
    names = [e["name"] for e in post(base, "/v2/repository/index", KEY_OPS).json()]
    assert names.count("m") == 2, names  # one per repository


# ---------------------------------------------------------------- fair loads

SLOW_WARMUP = """name: "slow"
platform: "mmserve_chaos"
mmserve { isolation: IN_PROCESS }
model_warmup {
  name: "slow"
  batch_size: 1
  count: 60
  inputs { key: "COMMAND" value { data_type: TYPE_INT64 dims: [ 2 ] input_data_file: "sleep" } }
  inputs { key: "INPUT" value { data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } }
}
"""


def slow_model(repo, name="slow", sleep_ms=1500):
    """A chaos model whose warmup sleeps 60 x `sleep_ms` (90 s by default)."""
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "warmup").mkdir()
    (repo / name / "warmup" / "sleep").write_bytes(struct.pack("<qq", 3, sleep_ms))
    (repo / name / "config.pbtxt").write_text(SLOW_WARMUP.replace('"slow"', f'"{name}"', 1))


def test_a_slow_warmup_holds_only_its_own_tenant_and_sigterm_completes(tmp_path):
    """One loader thread (--model-load-threads 1). team-a's load of a model
    whose warmup takes 90 s is under way: team-b's load, its on-demand
    request and gRPC load answer at once (before: after team-a's warmup),
    and SIGTERM ends the warmup and the server at once (before: never
    before the warmup ended; an HTTP request waiting for it held shutdown)."""
    repo_a, repo_b = tmp_path / "a", tmp_path / "b"
    repo_a.mkdir()
    repo_b.mkdir()
    slow_model(repo_a)
    copy_model("add_sub", repo_a, "a_next")
    for name in ("k", "od", "g"):
        copy_model("add_sub", repo_b, name)
    path = write_tenants(tmp_path / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]},
        {"id": "team-b", "keys": [KEY_B], "repositories": [repo_b]},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([repo_a, repo_b], "--tenants", path, "--model-control-mode", "explicit",
               "--load-on-demand", "true", "--enable-test-backends",
               "--model-load-threads", "1").start()
    stopped = False
    try:
        base = s.base
        slow = {}

        def load_slow():
            try:
                slow["r"] = post(base, "/v2/repository/models/slow/load", KEY_A)
            except requests.RequestException as e:  # the test fails below
                slow["e"] = e

        t = threading.Thread(target=load_slow, daemon=True)
        t.start()
        end = time.monotonic() + 60
        while time.monotonic() < end:
            states = {(e["name"], e.get("state")) for e in
                      post(base, "/v2/repository/index", KEY_OPS).json()}
            if ("slow", "LOADING") in states:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("team-a's slow load never started:\n" + s.text()[-3000:])
        # team-a's next load queues behind its own slow one (answered later).
        threading.Thread(target=lambda: post(base, "/v2/repository/models/a_next/load", KEY_A),
                         daemon=True).start()
        # team-b: a load, an on-demand request and a gRPC load answer within
        # seconds, while team-a's warmup has 90 s to go.
        for action in (
                lambda: requests.post(base + "/v2/repository/models/k/load", headers=bearer(KEY_B),
                                      json={}, timeout=20),
                lambda: requests.post(base + "/v2/models/od/infer", headers=bearer(KEY_B),
                                      json=add_sub_body(), timeout=20)):
            start = time.monotonic()
            r = action()
            assert r.status_code == 200, r.text
            assert time.monotonic() - start < 20
        g = grpcclient.InferenceServerClient(s.grpc_url)
        g.load_model("g", headers=grpc_auth(KEY_B), client_timeout=20)
        assert g.is_model_ready("g", headers=grpc_auth(KEY_B))
        assert "r" not in slow and "e" not in slow, slow  # still warming up
        # SIGTERM: the warmup stops, team-a's load is answered, the server exits.
        start = time.monotonic()
        assert s.stop() == 0, s.text()[-3000:]
        stopped = True
        assert time.monotonic() - start < 20
        t.join(20)
        assert slow.get("r") is not None and slow["r"].status_code == 503, slow
        assert "stopping" in slow["r"].text, slow["r"].text
    finally:
        if not stopped:
            s.stop()
