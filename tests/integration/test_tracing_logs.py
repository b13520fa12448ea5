"""Observability (issue 8), second part: W3C trace context continued into
OTLP/HTTP JSON traces (collected by a test receiver), the access log, JSON log
lines, and input drift (PSI) against a model's baseline."""
import json
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests

from conftest import ROOT, Server, binary, wait_for_log
from test_observability import add_sub_inputs, samples, scrape, value

EXAMPLES = ROOT / "examples" / "models"
STAGES = {"decode", "queue", "compute_input", "compute_infer", "compute_output", "encode"}


class OtlpReceiver:
    """An OTLP/HTTP collector that keeps every span it is sent."""

    def __init__(self):
        receiver = self
        self.spans = []  # (resource attributes, span)
        self.posts = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.posts.append((self.path, self.headers["Content-Type"]))
                    doc = json.loads(body)
                    for rs in doc["resourceSpans"]:
                        for ss in rs["scopeSpans"]:
                            receiver.spans.extend(ss["spans"])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def trace(self, trace_id, spans=7, deadline_s=60):
        """The spans of `trace_id`, once `spans` of them have arrived."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            with self.lock:
                found = [s for s in self.spans if s["traceId"] == trace_id]
            if len(found) >= spans:
                return found
            time.sleep(0.05)
        raise AssertionError(f"trace {trace_id}: {len(found)} spans after {deadline_s} s")

    def close(self):
        self.server.shutdown()


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = v.get("stringValue", v.get("intValue"))
    return out


@pytest.fixture(scope="module")
def receiver():
    r = OtlpReceiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def traced_server(receiver):
    s = Server([EXAMPLES], "--trace-endpoint", receiver.endpoint, "--trace-rate", "0",
               "--trace-flush-ms", "20").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def check_trace(spans, trace_id, parent_span_id, protocol):
    roots = [s for s in spans if s["name"] == "infer"]
    assert len(roots) == 1, spans
    root = roots[0]
    assert root["parentSpanId"] == parent_span_id
    assert root["kind"] == 2  # SERVER
    ra = attrs(root)
    assert ra["model"] == "add_sub" and ra["version"] == "1" and ra["tenant"] == "default"
    assert ra["protocol"] == protocol and ra["status"] == "OK" and int(ra["batch_size"]) == 1
    children = {s["name"]: s for s in spans if s is not root}
    assert set(children) == STAGES
    start, end = int(root["startTimeUnixNano"]), int(root["endTimeUnixNano"])
    assert 0 < start <= end
    for name, child in children.items():
        assert child["parentSpanId"] == root["spanId"], name
        assert child["kind"] == 1, name
        assert start <= int(child["startTimeUnixNano"]) <= int(child["endTimeUnixNano"]) <= end, name
        assert attrs(child)["model"] == "add_sub", name
    assert int(attrs(children["compute_infer"])["batch_size"]) == 1
    # The stages follow one another.
    order = ["decode", "queue", "compute_input", "compute_infer", "compute_output", "encode"]
    starts = [int(children[n]["startTimeUnixNano"]) for n in order]
    assert starts == sorted(starts)


def test_traceparent_is_continued_over_http_and_grpc(traced_server, receiver):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    http = httpclient.InferenceServerClient(traced_server.url)
    grpc = grpcclient.InferenceServerClient(traced_server.grpc_url)
    unsampled = "0af7651916cd43dd8448eb211c80319d"
    tid_http = "4bf92f3577b34da6a3ce929d0e0e4736"
    tid_grpc = "5bf92f3577b34da6a3ce929d0e0e4737"
    parent = "00f067aa0ba902b7"
    # Not sampled by the client: not traced (rate 0).
    http.infer("add_sub", add_sub_inputs(httpclient),
               headers={"traceparent": f"00-{unsampled}-{parent}-00"})
    http.infer("add_sub", add_sub_inputs(httpclient),
               headers={"traceparent": f"00-{tid_http}-{parent}-01"})
    grpc.infer("add_sub", add_sub_inputs(grpcclient),
               headers={"traceparent": f"00-{tid_grpc}-{parent}-01"})
    check_trace(receiver.trace(tid_http), tid_http, parent, "http")
    check_trace(receiver.trace(tid_grpc), tid_grpc, parent, "grpc")
    with receiver.lock:
        assert not [s for s in receiver.spans if s["traceId"] == unsampled]
        assert all(p == ("/v1/traces", "application/json") for p in receiver.posts)
    parsed = samples(scrape(traced_server))
    assert value(parsed, "mmserve_traces_sampled_total") == 2
    assert value(parsed, "mmserve_traces_dropped_total") == 0


def test_a_failed_request_is_traced_with_its_error(traced_server, receiver):
    tid = "6bf92f3577b34da6a3ce929d0e0e4738"
    r = requests.post(traced_server.base + "/v2/models/add_sub/infer",
                      headers={"traceparent": f"00-{tid}-00f067aa0ba902b7-01"},
                      json={"inputs": [{"name": "INPUT0", "shape": [3], "datatype": "FP32",
                                        "data": [1, 2, 3]}]})
    assert r.status_code == 400
    spans = receiver.trace(tid, spans=2)
    root = [s for s in spans if s["name"] == "infer"][0]
    assert root["status"]["code"] == 2
    assert "INVALID_ARGUMENT" in root["status"]["message"]
    assert attrs(root)["status"] == "INVALID_ARGUMENT"
    assert {s["name"] for s in spans} == {"infer", "decode", "encode"}


def test_trace_rate_one_traces_requests_without_a_parent_to_a_file(tmp_path):
    path = tmp_path / "traces.jsonl"
    s = Server([EXAMPLES], "--trace-file", path, "--trace-rate", "1",
               "--trace-flush-ms", "20").start()
    try:
        r = requests.post(s.base + "/v2/models/add_sub/infer", json={"inputs": [
            {"name": n, "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}
            for n in ("INPUT0", "INPUT1")]})
        assert r.status_code == 200
        end = time.monotonic() + 60
        spans = []
        while time.monotonic() < end and len(spans) < 7:
            spans = [sp for line in path.read_text().splitlines() if line
                     for rs in json.loads(line)["resourceSpans"]
                     for ss in rs["scopeSpans"] for sp in ss["spans"]]
            time.sleep(0.05)
        assert len(spans) == 7
        root = [sp for sp in spans if sp["name"] == "infer"][0]
        assert "parentSpanId" not in root or not root["parentSpanId"]
        assert len({sp["traceId"] for sp in spans}) == 1
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_bad_trace_flags_stop_the_server_with_a_clear_error():
    out = subprocess.run([str(binary()), "--model-repository", str(EXAMPLES), "--http-port", "0",
                          "--grpc-port", "0", "--metrics-port", "0",
                          "--trace-endpoint", "https://collector:4318/v1/traces"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "https" in out.stdout + out.stderr


def test_access_log_has_one_line_per_request(tmp_path):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    path = tmp_path / "access.log"
    s = Server([EXAMPLES], "--access-log", path).start()
    try:
        http = httpclient.InferenceServerClient(s.url)
        grpc = grpcclient.InferenceServerClient(s.grpc_url)
        http.infer("add_sub", add_sub_inputs(httpclient), request_id="req-1")
        grpc.infer("add_sub", add_sub_inputs(grpcclient), request_id="req-2")
        with pytest.raises(InferenceServerException):
            http.infer("add_sub", add_sub_inputs(httpclient, 3), request_id="req-3")
        with pytest.raises(InferenceServerException):
            http.infer("nope", add_sub_inputs(httpclient), request_id="req-4")
        # A request on a gRPC stream is logged like any other.
        answers = []
        grpc.start_stream(callback=lambda result, error: answers.append((result, error)))
        grpc.async_stream_infer("add_sub", add_sub_inputs(grpcclient), request_id="req-5")
        grpc.stop_stream()  # waits for the stream's answers
        assert len(answers) == 1 and answers[0][1] is None
        requests.get(s.base + "/v2/health/ready")  # not an inference: no line
        end = time.monotonic() + 30
        lines = []
        while time.monotonic() < end and len(lines) < 5:
            lines = path.read_text().splitlines() if path.exists() else []
            time.sleep(0.05)
        assert len(lines) == 5, lines
        by_id = {next(f for f in l.split() if f.startswith("id=")): l for l in lines}
        ok = by_id['id="req-1"']
        assert ' http ' in ok and 'tenant="default"' in ok and 'model="add_sub"' in ok
        assert 'version="1"' in ok and "status=OK" in ok and "batch=1" in ok
        assert int(ok.split("total_us=")[1].split()[0]) >= 0
        assert " grpc " in by_id['id="req-2"'] and "status=OK" in by_id['id="req-2"']
        bad = by_id['id="req-3"']
        assert "status=INVALID_ARGUMENT" in bad and 'error="model \'add_sub\': input' in bad
        assert "status=NOT_FOUND" in by_id['id="req-4"']
        assert " grpc " in by_id['id="req-5"'] and "status=OK" in by_id['id="req-5"']
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_json_logs_and_json_access_log_on_stdout():
    s = Server([EXAMPLES], "--log-format", "json", "--access-log", "-").start()
    try:
        r = requests.post(s.base + "/v2/models/add_sub/infer", json={"id": 'q"1', "inputs": [
            {"name": n, "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}
            for n in ("INPUT0", "INPUT1")]})
        assert r.status_code == 200
        wait_for_log(s, '"request_id":"q\\"1"')
    finally:
        assert s.stop() == 0
    records = [json.loads(line) for line in s.log if line.strip()]
    assert all(("msg" in r and "level" in r and "time" in r) or "request_id" in r
               for r in records), s.text()[-2000:]
    access = [r for r in records if "request_id" in r]
    assert len(access) == 1
    a = access[0]
    assert a["request_id"] == 'q"1' and a["model"] == "add_sub" and a["status"] == "OK"
    assert a["protocol"] == "http" and a["tenant"] == "default" and a["batch_size"] == 1
    for key in ("total_us", "decode_us", "queue_us", "compute_input_us", "compute_infer_us",
                "compute_output_us", "encode_us"):
        assert isinstance(a[key], int) and a[key] >= 0, key
    assert any(r.get("msg") == "mmserve is ready" for r in records)


# --------------------------------------------------------------- drift

@pytest.fixture(scope="module")
def drift_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("drift")
    shutil.copytree(EXAMPLES / "mlp_classifier", repo / "mlp_classifier")
    rng = np.random.default_rng(7)
    npy = repo / "samples.npy"
    np.save(npy, rng.normal(0, 1, size=(20000, 16)).astype(np.float32))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_drift_baseline.py"),
                    "--input", f"input={npy}",
                    "--out", str(repo / "mlp_classifier" / "drift_baseline.json")], check=True)
    return repo


def test_drift_psi_stays_low_for_baseline_inputs_and_alerts_for_shifted(drift_repo):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    s = Server([drift_repo], "--drift-sample-rate", "1", "--drift-window-rows", "2000",
               "--drift-min-rows", "1000", "--drift-psi-threshold", "0.2",
               "--drift-check-ms", "50").start()
    try:
        grpc = grpcclient.InferenceServerClient(s.grpc_url)
        rng = np.random.default_rng(11)

        def send(mean, requests_, rows=50):
            for _ in range(requests_):
                x = rng.normal(mean, 1, size=(rows, 16)).astype(np.float32)
                inp = grpcclient.InferInput("input", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                grpc.infer("mlp_classifier", [inp])

        def drift():
            st = grpc.get_inference_statistics("mlp_classifier")  # protobuf: no drift there
            assert st.model_stats[0].inference_stats.success.count > 0
            r = requests.get(s.base + "/v2/models/mlp_classifier/stats").json()
            return r["model_stats"][0]["mmserve"]["drift"]

        send(0, 40)  # 2000 rows from the baseline's distribution
        features = drift()
        assert len(features) == 16
        assert all(f["rows"] == 2000 and f["psi"] is not None for f in features)
        assert max(f["psi"] for f in features) < 0.05, features
        assert not any(f["alerting"] for f in features)
        parsed = samples(scrape(s))
        assert value(parsed, "mmserve_drift_psi", model="mlp_classifier", input="input",
                     feature="3") < 0.05
        assert value(parsed, "mmserve_drift_alert", model="mlp_classifier", feature="3") == 0
        assert "has drifted" not in s.text()

        send(1.0, 40)  # a whole window shifted by one standard deviation
        # Logged by the server's own check, before anyone reads the drift.
        wait_for_log(s, "input 'input' feature 15 has drifted from its baseline")
        features = drift()
        assert min(f["psi"] for f in features) > 0.2, features
        assert all(f["alerting"] for f in features)
        parsed = samples(scrape(s))
        assert value(parsed, "mmserve_drift_alert", model="mlp_classifier", feature="3") == 1
        assert value(parsed, "mmserve_drift_window_rows", model="mlp_classifier",
                     input="input") == 2000

        send(0, 40)  # back to normal: the alert clears, and says so once
        assert not any(f["alerting"] for f in drift())
        wait_for_log(s, "feature 15 is back within the drift threshold")
        assert s.text().count("feature 15 has drifted") == 1
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_a_bad_baseline_fails_the_load_naming_the_file(drift_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(drift_repo / "mlp_classifier", repo / "mlp_classifier")
    (repo / "mlp_classifier" / "drift_baseline.json").write_text('{"version": 2}')
    s = Server([repo]).start()
    try:
        r = requests.post(s.base + "/v2/repository/index", json={}).json()
        assert r[0]["state"] == "UNAVAILABLE"
        assert "drift baseline" in r[0]["reason"] and "drift_baseline.json" in r[0]["reason"]
    finally:
        assert s.stop() == 0, s.text()[-3000:]
