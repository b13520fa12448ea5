"""The REST API over HTTP/2 on the HTTP port: h2c with prior knowledge, and
h2 chosen by ALPN under TLS (--http2, on by default).

The HTTP/1.1 session reads a new connection's first bytes: the HTTP/2
preface hands it to the HTTP/2 transport the native gRPC port runs on,
whose streams go to the same Router. So every answer here is compared with
the same request's answer over HTTP/1.1, byte for byte, and the limits give
the same statuses and words. Clients: curl (nghttp2 inside) and the h2
library, raw.
"""
import json
import shutil
import socket
import ssl
import signal
import subprocess
import time

import numpy as np
import pytest
import requests
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (DataReceived, ResponseReceived, StreamEnded, StreamReset)

from conftest import EXAMPLES, Server
from decoupled_models import serve_repeat_and_copy
from test_grpc_native import H2SPEC_KNOWN, run_h2spec
from test_queue_policies import BUSY_CONFIG, SLOW_N, busy_model
from test_tls import certs, start_tls_server  # noqa: F401 (a fixture)

CURL = shutil.which("curl")

ADD_SUB_JSON = {
    "inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [1.0, 2.0, 3.0, 4.0]},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [0.5, 0.5, 0.5, 0.5]},
    ]
}


def binary_add_sub():
    """add_sub's request in the binary extension: its JSON head's length and the body."""
    a = np.array([1, 2, 3, 4], dtype=np.float32)
    b = np.array([4, 3, 2, 1], dtype=np.float32)
    head = json.dumps({
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [4],
             "parameters": {"binary_data_size": 16}},
            {"name": "INPUT1", "datatype": "FP32", "shape": [4],
             "parameters": {"binary_data_size": 16}},
        ],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}},
                    {"name": "OUTPUT1", "parameters": {"binary_data": True}}],
    }).encode()
    return len(head), head + a.tobytes() + b.tobytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server([EXAMPLES], "--max-request-bytes", "65536", "--max-header-bytes", "4096").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


class H2:
    """One HTTP/2 connection (prior knowledge, or over `sock` already TLS)."""

    def __init__(self, port=None, sock=None):
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=60)
        self.conn = H2Connection(config=H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.got = {}

    def send(self, path, method="GET", body=b"", headers=()):
        sid = self.conn.get_next_available_stream_id()
        head = [(":method", method), (":scheme", "http"), (":authority", "localhost"),
                (":path", path)] + list(headers)
        if body:
            head.append(("content-length", str(len(body))))
        self.got[sid] = {"status": None, "headers": {}, "data": b"", "reset": None, "done": False}
        self.conn.send_headers(sid, head, end_stream=not body)
        self.sock.sendall(self.conn.data_to_send())
        while body:  # in the pieces flow control allows
            room = min(self.conn.local_flow_control_window(sid),
                       self.conn.max_outbound_frame_size, len(body))
            if room == 0:
                if self.got[sid]["done"]:
                    break  # answered (413) and reset: the rest is not wanted
                self.pump()
                continue
            self.conn.send_data(sid, body[:room], end_stream=room == len(body))
            body = body[room:]
            self.sock.sendall(self.conn.data_to_send())
        return sid

    def pump(self):
        """Reads once and takes what came (window updates, answers)."""
        chunk = self.sock.recv(1 << 16)
        assert chunk, "the server closed the connection"
        for event in self.conn.receive_data(chunk):
            got = self.got.get(getattr(event, "stream_id", None))
            if got is None:
                continue
            if isinstance(event, ResponseReceived):
                got["headers"] = {k.decode(): v.decode() for k, v in event.headers}
                got["status"] = int(got["headers"][":status"])
            elif isinstance(event, DataReceived):
                got["data"] += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
            elif isinstance(event, StreamReset):
                got["reset"], got["done"] = event.error_code, True
            elif isinstance(event, StreamEnded):
                got["done"] = True
        self.sock.sendall(self.conn.data_to_send())

    def wait(self, *sids):
        """Reads until every stream in `sids` has ended; returns their answers."""
        while not all(self.got[s]["done"] for s in sids):
            self.pump()
        return [self.got[s] for s in sids]

    def request(self, path, method="GET", body=b"", headers=()):
        return self.wait(self.send(path, method, body, headers))[0]

    def close(self):
        self.sock.close()


def test_h2c_answers_as_http1_does(server):
    # Health, metadata, JSON and binary inference, errors: the same status,
    # body and headers as HTTP/1.1 gives for the same request.
    h2 = H2(server.port)
    try:
        for path in ("/v2/health/ready", "/v2/health/live", "/v2", "/v2/models/add_sub",
                     "/v2/models/add_sub/config", "/v2/models/nope", "/v2/nothing/here"):
            got = h2.request(path)
            want = requests.get(server.base + path, timeout=30)
            assert got["status"] == want.status_code, path
            assert got["data"] == want.content, path
            assert got["headers"].get("content-type") == want.headers.get("Content-Type"), path
            assert int(got["headers"]["content-length"]) == len(want.content), path

        body = json.dumps(ADD_SUB_JSON).encode()
        got = h2.request("/v2/models/add_sub/infer", "POST", body,
                         [("content-type", "application/json")])
        want = requests.post(server.base + "/v2/models/add_sub/infer", data=body, timeout=30)
        assert got["status"] == 200 and got["data"] == want.content
        outputs = {o["name"]: o["data"] for o in json.loads(got["data"])["outputs"]}
        assert outputs["OUTPUT0"] == [1.5, 2.5, 3.5, 4.5]

        n, body = binary_add_sub()
        headers = [("inference-header-content-length", str(n))]
        got = h2.request("/v2/models/add_sub/infer", "POST", body, headers)
        want = requests.post(server.base + "/v2/models/add_sub/infer", data=body,
                             headers={"Inference-Header-Content-Length": str(n)}, timeout=30)
        assert got["status"] == 200 and got["data"] == want.content
        assert got["headers"]["inference-header-content-length"] == \
            want.headers["Inference-Header-Content-Length"]
        assert got["headers"]["content-type"] == "application/octet-stream"
        head = int(got["headers"]["inference-header-content-length"])
        assert np.frombuffer(got["data"][head:head + 16], np.float32).tolist() == [5, 5, 5, 5]

        # A method the path does not take: 405 with Allow; HEAD: the head alone.
        got = h2.request("/v2/models/add_sub/infer", "GET")
        assert got["status"] == 405 and got["headers"]["allow"]
        got = h2.request("/v2/health/ready", "HEAD")
        assert got["status"] == 200 and got["data"] == b""
    finally:
        h2.close()


def test_many_requests_at_once_on_one_connection(server):
    # Streams interleave on the connection; each gets its own answer.
    h2 = H2(server.port)
    try:
        sids = []
        for i in range(16):
            request = {"inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [i, i, i, i]},
                {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 1, 1, 1]}]}
            sids.append(h2.send("/v2/models/add_sub/infer", "POST", json.dumps(request).encode()))
        for i, got in enumerate(h2.wait(*sids)):
            assert got["status"] == 200, got
            outputs = {o["name"]: o["data"] for o in json.loads(got["data"])["outputs"]}
            assert outputs["OUTPUT0"] == [i + 1] * 4
    finally:
        h2.close()


def test_limits_answer_as_http1_does(server):
    h2 = H2(server.port)
    try:
        # A body over --max-request-bytes: 413 naming the flag; the connection serves on.
        got = h2.request("/v2/models/add_sub/infer", "POST", b"x" * 70000)
        assert got["status"] == 413, got
        assert "--max-request-bytes" in json.loads(got["data"])["error"]
        # Header fields over --max-header-bytes: 431.
        got = h2.request("/v2/health/ready", headers=[("x-big", "y" * 5000)])
        assert got["status"] == 431, got
        assert "--max-header-bytes" in json.loads(got["data"])["error"]
        # A malformed Inference-Header-Content-Length: 400, as over HTTP/1.1.
        got = h2.request("/v2/models/add_sub/infer", "POST", b"{}",
                         [("inference-header-content-length", "-3")])
        assert got["status"] == 400
        assert "Inference-Header-Content-Length" in json.loads(got["data"])["error"]
        assert h2.request("/v2/health/ready")["status"] == 200
    finally:
        h2.close()


def test_curl_speaks_h2c_and_http1_still_works(server):
    # curl with prior knowledge: HTTP/2 to the same port HTTP/1.1 clients use.
    out = subprocess.run(
        [CURL, "-s", "--http2-prior-knowledge", "-H", "Content-Type: application/json",
         "-d", json.dumps(ADD_SUB_JSON), "-w", "\n%{http_version} %{http_code}",
         f"{server.base}/v2/models/add_sub/infer"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    body, _, status = out.rpartition("\n")
    assert status == "2 200", out
    assert json.loads(body)["model_name"] == "add_sub"
    out = subprocess.run([CURL, "-s", "-w", "%{http_version}", "-o", "/dev/null",
                          f"{server.base}/v2/health/ready"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out == "1.1"


def test_generate_stream_events_over_http2(tmp_path):
    # Server-Sent Events as DATA frames, as the model sends them.
    s = serve_repeat_and_copy(tmp_path, 'backend: "mmserve_test_identity"\n'
                              'input [ { name: "IN" data_type: TYPE_INT32 dims: [ -1 ] } ]\n')
    h2 = H2(s.port)
    try:
        got = h2.request("/v2/models/repeat/generate_stream", "POST",
                         json.dumps({"IN": [5, 6, 7]}).encode())
        assert got["status"] == 200
        assert got["headers"]["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in got["data"].decode().split("\n")
                  if line.startswith("data: ")]
        assert [(e["OUT"], e["IDX"]) for e in events] == [(5, 0), (6, 1), (7, 2)]
    finally:
        h2.close()
        assert s.stop() == 0, s.text()[-3000:]


def test_http2_false_keeps_the_port_http1_only():
    s = Server([EXAMPLES], "--http2", "false").start()
    try:
        run = subprocess.run([CURL, "-s", "--http2-prior-knowledge", "-o", "/dev/null",
                              "-w", "%{http_code}", f"{s.base}/v2/health/ready"],
                             capture_output=True, text=True, timeout=60)
        assert run.stdout != "200"  # the preface is not HTTP/1.1: refused
        assert requests.get(s.base + "/v2/health/ready", timeout=30).status_code == 200
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_tls_alpn_chooses_h2_or_http1(certs):  # noqa: F811
    s = start_tls_server(certs)
    try:
        url = f"https://127.0.0.1:{s.port}/v2/health/ready"
        for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
            out = subprocess.run([CURL, "-s", flag, "--cacert", str(certs.ca), "-o",
                                  "/dev/null", "-w", "%{http_version} %{http_code}", url],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
            assert out == f"{version} 200", (flag, out)
        # The h2 library over TLS: the same answers as over HTTP/1.1.
        context = ssl.create_default_context(cafile=str(certs.ca))
        context.set_alpn_protocols(["h2", "http/1.1"])
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=60)
        tls = context.wrap_socket(raw, server_hostname="localhost")
        assert tls.selected_alpn_protocol() == "h2"
        h2 = H2(sock=tls)
        try:
            got = h2.request("/v2/models/add_sub/infer", "POST",
                             json.dumps(ADD_SUB_JSON).encode())
            assert got["status"] == 200
            assert json.loads(got["data"])["model_name"] == "add_sub"
        finally:
            h2.close()
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_a_shutdown_answers_requests_in_flight_and_refuses_those_arriving(tmp_path):
    # A request running when SIGTERM comes is answered after the GOAWAY; one
    # whose body is still arriving is refused (REFUSED_STREAM, which a
    # client may retry elsewhere); the server then exits cleanly. curl, as
    # the h2 library takes a GOAWAY as the connection's end.
    import onnx
    (tmp_path / "busy" / "1").mkdir(parents=True)
    onnx.save(busy_model(), str(tmp_path / "busy" / "1" / "model.onnx"))
    (tmp_path / "busy" / "config.pbtxt").write_text(BUSY_CONFIG)
    s = Server([tmp_path]).start()
    url = f"{s.base}/v2/models/busy/infer"
    n = SLOW_N // 4
    body = json.dumps({"inputs": [
        {"name": "n", "datatype": "INT64", "shape": [1, 1], "data": [n]},
        {"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]})
    running = subprocess.Popen([CURL, "-s", "--http2-prior-knowledge", "-d", body,
                                "-w", "\n%{http_code}", url], stdout=subprocess.PIPE, text=True)
    arriving = subprocess.Popen([CURL, "-s", "--http2-prior-knowledge", "-X", "POST", "-T", "-",
                                 "-w", "\n%{http_code}", url], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    try:
        arriving.stdin.write('{"inputs": [')  # and no more
        arriving.stdin.flush()
        # Running (the console's overview counts it) before the signal.
        deadline = time.monotonic() + 120
        while True:
            overview = requests.get(s.base + "/console/api/overview", timeout=30).json()
            busy = [m for m in overview["models"] if m["name"] == "busy"]
            if busy and busy[0]["executing"] == 1:
                break
            assert time.monotonic() < deadline, overview
            time.sleep(0.05)
        s.proc.send_signal(signal.SIGTERM)
        out, _ = running.communicate(timeout=120)
        answer, _, status = out.rpartition("\n")
        assert status == "200", out
        assert json.loads(answer)["outputs"][0]["data"] == [1.0 + n]
        out, _ = arriving.communicate(timeout=120)
        assert arriving.returncode != 0 and not out.endswith("200"), (arriving.returncode, out)
        assert s.proc.wait(timeout=120) == 0, s.text()[-3000:]
    finally:
        for p in (running, arriving):
            if p.poll() is None:
                p.kill()
        s.stop()


# The HTTP port's own, beyond the gRPC port's: it serves HTTP/1.1 too, so a
# connection that does not open with the HTTP/2 preface is HTTP/1.1, and
# h2spec's "invalid preface" gets HTTP/1.1's 400 instead of a GOAWAY.
H2SPEC_KNOWN_HTTP_PORT = H2SPEC_KNOWN | {("http2/3.5", "Sends invalid connection preface")}


def test_h2spec_conformance_on_the_http_port(server, tmp_path):
    # The same 145 cases as the gRPC port's (test_grpc_native.py), against
    # REST over h2c: the same HTTP/2 transport under another kind of stream.
    failed, total, out = run_h2spec(server.port, tmp_path / "h2spec-http.xml",
                                    "h2spec-http.xml")
    assert total >= 145, out[-3000:]
    assert failed <= H2SPEC_KNOWN_HTTP_PORT, (sorted(failed - H2SPEC_KNOWN_HTTP_PORT),
                                              out[-5000:])
