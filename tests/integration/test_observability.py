"""Observability (issue 8): Prometheus metrics on --metrics-port, Triton's
statistics extension over HTTP and gRPC (tritonclient), namespaces in both.

Counts are checked exactly against the traffic each test sends; durations
against what the client itself measured (a server duration lies inside the
client's) and against the histograms' bucket bounds."""
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, Server
from test_tenancy import KEY_A, KEY_OPS, bearer, write_tenants

EXAMPLES = ROOT / "examples" / "models"


def scrape(server):
    r = requests.get(server.metrics_url, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    return r.text


def samples(text):
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(all_samples, name, **labels):
    want = set(labels.items())
    found = [v for (n, ls), v in all_samples.items() if n == name and want <= set(ls)]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def grpc_bearer(key):
    return {"authorization": f"Bearer {key}"}  # gRPC metadata keys are lowercase


def add_sub_inputs(module, n=4):
    a = np.arange(n, dtype=np.float32)
    inputs = [module.InferInput("INPUT0", [n], "FP32"), module.InferInput("INPUT1", [n], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    return inputs


@pytest.fixture(scope="module")
def obs_server():
    s = Server([EXAMPLES]).start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def test_metrics_and_statistics_count_the_traffic_sent(obs_server):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    model = "add_sub"
    # Baselines: the module's other tests may have sent traffic before.
    before = samples(scrape(obs_server))

    def count(all_samples, code):
        try:
            return value(all_samples, "mmserve_inference_requests_total", model=model,
                         version="1", code=code)
        except AssertionError:
            return 0

    http = httpclient.InferenceServerClient(obs_server.url)
    grpc = grpcclient.InferenceServerClient(obs_server.grpc_url)
    client_seconds = 0.0
    for _ in range(7):
        t0 = time.monotonic()
        http.infer(model, add_sub_inputs(httpclient))
        client_seconds += time.monotonic() - t0
    for _ in range(3):
        t0 = time.monotonic()
        grpc.infer(model, add_sub_inputs(grpcclient))
        client_seconds += time.monotonic() - t0
    for _ in range(2):  # wrong shape: the model refuses them
        with pytest.raises(InferenceServerException):
            http.infer(model, add_sub_inputs(httpclient, 3))
    with pytest.raises(InferenceServerException):
        grpc.infer(model, add_sub_inputs(grpcclient, 5))

    after = samples(scrape(obs_server))
    assert count(after, "OK") - count(before, "OK") == 10
    assert count(after, "INVALID_ARGUMENT") - count(before, "INVALID_ARGUMENT") == 3

    def delta(name, **labels):
        base = value(before, name, **labels) if any(
            n == name and set(labels.items()) <= set(ls) for n, ls in before) else 0
        return value(after, name, **labels) - base

    labels = dict(model=model, version="1", tenant="shared")
    assert delta("mmserve_inference_request_duration_seconds_count", **labels) == 10
    assert delta("mmserve_inference_queue_duration_seconds_count", **labels) == 10
    for stage in ("input", "infer", "output"):
        assert delta(f"mmserve_inference_compute_{stage}_duration_seconds_count", **labels) == 10
    assert delta("mmserve_inference_executions_total", **labels) == 10
    assert delta("mmserve_inference_rows_total", **labels) == 10
    assert delta("mmserve_inference_batch_size_count", **labels) == 10
    assert delta("mmserve_inference_batch_size_bucket", le="1", **labels) == 10
    # The server's durations lie inside what the client measured.
    server_seconds = delta("mmserve_inference_request_duration_seconds_sum", **labels)
    assert 0 < server_seconds <= client_seconds
    # Buckets are cumulative and end with every observation in +Inf.
    buckets = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in after.items()
                      if n == "mmserve_inference_request_duration_seconds_bucket"
                      and dict(ls).get("model") == model), key=lambda b: b[0])
    assert buckets[0][0] == pytest.approx(50e-6) and buckets[-2][0] == 60
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == value(after, "mmserve_inference_request_duration_seconds_count",
                                   **labels)
    assert value(after, "mmserve_inference_in_flight", **labels) == 0
    assert value(after, "mmserve_inference_queue_depth", **labels) == 0
    assert value(after, "mmserve_model_state", state="READY", **labels) == 1
    assert value(after, "mmserve_model_state", state="UNAVAILABLE", **labels) == 0
    assert value(after, "mmserve_model_memory_bytes", **labels) > 0
    assert value(after, "mmserve_model_loads_total", **labels) == 1
    assert value(after, "mmserve_model_load_duration_seconds", **labels) > 0
    assert value(after, "mmserve_model_load_failures_total", **labels) == 0
    # Usage of the open server's one tenant, per model.
    assert (value(after, "mmserve_tenant_requests_total", tenant="default", model=model)
            - value(before, "mmserve_tenant_requests_total", tenant="default", model=model)
            if any(n == "mmserve_tenant_requests_total" for n, _ in before) else 13) == 13
    assert value(after, "process_resident_memory_bytes") > 1e6
    assert value(after, "process_cpu_seconds_total") > 0

    # Triton's statistics, both protocols: the same figures.
    hs = http.get_inference_statistics(model)["model_stats"]
    gs = grpc.get_inference_statistics(model, as_json=True)["model_stats"]
    assert len(hs) == 1 and len(gs) == 1
    h, g = hs[0], gs[0]
    assert h["name"] == model and h["version"] == "1"
    succ = h["inference_stats"]["success"]
    assert succ["count"] == count(after, "OK")
    assert h["inference_stats"]["fail"]["count"] == sum(
        v for (n, ls), v in after.items()
        if n == "mmserve_inference_requests_total" and dict(ls).get("model") == model
        and dict(ls)["code"] != "OK")
    assert int(g["inference_stats"]["success"]["count"]) == succ["count"]
    for stage in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert h["inference_stats"][stage]["count"] == succ["count"], stage
    assert h["inference_stats"]["compute_infer"]["ns"] > 0
    assert h["inference_count"] == h["execution_count"] == succ["count"]
    assert h["last_inference"] > 0
    assert [b["batch_size"] for b in h["batch_stats"]] == [1]
    assert h["batch_stats"][0]["compute_infer"]["count"] == succ["count"]
    assert h["mmserve"]["failures"]["INVALID_ARGUMENT"] >= 3
    assert h["mmserve"]["loads"] == 1

    # Every model, one version, and a version never loaded.
    every = http.get_inference_statistics()["model_stats"]
    assert {m["name"] for m in every} >= {"add_sub", "mlp_classifier", "image_cnn"}
    one = http.get_inference_statistics(model, "1")["model_stats"]
    assert len(one) == 1 and one[0]["version"] == "1"
    r = requests.get(obs_server.base + f"/v2/models/{model}/versions/7/stats")
    assert r.status_code == 404 and "never been loaded" in r.json()["error"]
    r = requests.get(obs_server.base + "/v2/models/no_such_model/stats")
    assert r.status_code == 404 and "unknown model 'no_such_model'" in r.json()["error"]
    with pytest.raises(InferenceServerException, match="unknown model"):
        grpc.get_inference_statistics("no_such_model")


def test_exposition_passes_promtool(obs_server):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: scripts/install-deps.sh installs Debian's prometheus")
    text = scrape(obs_server)
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    # promtool exits 1 for lint findings as well as for errors; there must be neither.
    assert out.returncode == 0, out.stdout + out.stderr


def test_label_values_are_escaped(tmp_path):
    repo = tmp_path / "repo"
    odd = 'odd"name'  # (a backslash or a newline cannot be in a model name)
    shutil.copytree(EXAMPLES / "add_sub", repo / odd)
    (repo / odd / "config.pbtxt").write_text(
        (EXAMPLES / "add_sub" / "config.pbtxt").read_text().replace('"add_sub"', '"odd\\"name"'))
    s = Server([repo]).start()
    try:
        text = scrape(s)
        assert 'model="odd\\"name"' in text
        parsed = samples(text)
        assert value(parsed, "mmserve_model_state", model=odd, state="READY") == 1
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_statistics_and_metrics_respect_namespaces(tmp_path):
    other = tmp_path / "other"
    shutil.copytree(EXAMPLES / "add_sub", other / "add_sub_b")
    (other / "add_sub_b" / "config.pbtxt").write_text(
        (EXAMPLES / "add_sub" / "config.pbtxt").read_text().replace('"add_sub"', '"add_sub_b"'))
    tenants = write_tenants(tmp_path / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [EXAMPLES]},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin", "repositories": [other]},
    ])
    s = Server([EXAMPLES, other], "--tenants", tenants).start()
    try:
        import tritonclient.grpc as grpcclient
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException

        http = httpclient.InferenceServerClient(s.url)
        grpc = grpcclient.InferenceServerClient(s.grpc_url)
        http.infer("add_sub", add_sub_inputs(httpclient), headers=dict(bearer(KEY_A)))
        mine = http.get_inference_statistics(headers=dict(bearer(KEY_A)))["model_stats"]
        names = {m["name"] for m in mine}
        assert "add_sub" in names and "add_sub_b" not in names
        with pytest.raises(InferenceServerException, match="unknown model 'add_sub_b'"):
            http.get_inference_statistics("add_sub_b", headers=dict(bearer(KEY_A)))
        with pytest.raises(InferenceServerException, match="unknown model 'add_sub_b'"):
            grpc.get_inference_statistics("add_sub_b", headers=grpc_bearer(KEY_A))
        with pytest.raises(InferenceServerException, match="(?i)api key|unauthenticated"):
            http.get_inference_statistics("add_sub")
        admin = {m["name"] for m in
                 grpc.get_inference_statistics(headers=grpc_bearer(KEY_OPS),
                                               as_json=True)["model_stats"]}
        assert {"add_sub", "add_sub_b"} <= admin
        # The metrics carry the owner as the tenant label, and usage by the sender.
        parsed = samples(scrape(s))
        assert value(parsed, "mmserve_model_state", model="add_sub_b", state="READY",
                     tenant="ops") == 1
        assert value(parsed, "mmserve_inference_requests_total", model="add_sub", code="OK",
                     tenant="team-a") == 1
        assert value(parsed, "mmserve_tenant_requests_total", tenant="team-a",
                     model="add_sub") == 1
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_lifecycle_events_are_counted(tmp_path):
    """Loads, a load failure, on-demand loads and evictions under a budget."""
    repo = tmp_path / "repo"
    for name in ("a", "b"):
        shutil.copytree(EXAMPLES / "add_sub", repo / name)
        (repo / name / "config.pbtxt").write_text(
            (EXAMPLES / "add_sub" / "config.pbtxt").read_text().replace('"add_sub"', f'"{name}"')
            + "mmserve { memory_footprint_bytes: 1000000 }\n")
    shutil.copytree(EXAMPLES / "add_sub", repo / "broken")
    (repo / "broken" / "config.pbtxt").write_text('name: "broken"\nplatform: "onnxruntime_onnx"\n')
    (repo / "broken" / "1" / "model.onnx").write_bytes(b"not an onnx model")
    (repo / "empty").mkdir()  # no version folder
    s = Server([repo], "--model-control-mode", "explicit", "--model-memory-budget", "1500000").start()
    try:
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException

        http = httpclient.InferenceServerClient(s.url)
        http.infer("a", add_sub_inputs(httpclient))   # on demand
        http.infer("b", add_sub_inputs(httpclient))   # on demand, evicts a
        http.infer("a", add_sub_inputs(httpclient))   # on demand again, evicts b
        with pytest.raises(InferenceServerException):
            http.load_model("broken")
        parsed = samples(scrape(s))
        assert value(parsed, "mmserve_model_loads_total", model="a") == 2
        assert value(parsed, "mmserve_model_on_demand_loads_total", model="a") == 2
        assert value(parsed, "mmserve_model_evictions_total", model="a") == 1
        assert value(parsed, "mmserve_model_loads_total", model="b") == 1
        assert value(parsed, "mmserve_model_evictions_total", model="b") == 1
        assert value(parsed, "mmserve_model_state", model="b", state="UNAVAILABLE") == 1
        assert value(parsed, "mmserve_model_memory_bytes", model="b") == 0
        assert value(parsed, "mmserve_model_load_failures_total", model="broken") == 1
        # A model with no loadable version at all shows as UNAVAILABLE, version "".
        assert value(parsed, "mmserve_model_state", model="empty", version="",
                     state="UNAVAILABLE") == 1
        assert value(parsed, "mmserve_memory_budget_bytes") == 1500000
        assert value(parsed, "mmserve_memory_loaded_bytes") == 1000000
        # Statistics survive the eviction.
        b = http.get_inference_statistics("b")["model_stats"]
        assert b[0]["inference_stats"]["success"]["count"] == 1
        assert b[0]["mmserve"]["evictions"] == 1
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_metrics_can_be_turned_off():
    s = Server([EXAMPLES], "--allow-metrics", "false").start()
    try:
        assert s.metrics_port is None
        assert "metrics at" not in s.text()
    finally:
        assert s.stop() == 0


def test_models_in_worker_processes_report_their_stages():
    """The worker sends its own input and output times back: the three
    compute stages of a model in a worker process are all measured."""
    import tritonclient.http as httpclient

    s = Server([EXAMPLES], "--default-isolation", "process").start()
    try:
        http = httpclient.InferenceServerClient(s.url)
        for _ in range(3):
            http.infer("add_sub", add_sub_inputs(httpclient))
        st = http.get_inference_statistics("add_sub")["model_stats"][0]["inference_stats"]
        for stage in ("compute_input", "compute_infer", "compute_output"):
            assert st[stage]["count"] == 3 and st[stage]["ns"] > 0, (stage, st)
        compute = sum(st[k]["ns"] for k in ("compute_input", "compute_infer", "compute_output"))
        assert st["queue"]["ns"] + compute <= st["success"]["ns"], st
    finally:
        assert s.stop() == 0, s.text()[-3000:]
