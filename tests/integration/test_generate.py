"""Triton's generate extension over HTTP through a real server:
POST /v2/models/{m}[/versions/{v}]/generate (one JSON response) and
/generate_stream (Server-Sent Events, parsed here by hand), for a decoupled
model (the repeat test backend: IN's values one response each) and a
non-decoupled one (the identity test backend)."""
import json
import socket
import threading

import pytest
import requests

from decoupled_models import serve_repeat_and_copy

COPY_CONFIG = """
backend: "mmserve_test_identity"
input [ { name: "IN" data_type: TYPE_INT32 dims: [ -1 ] },
        { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = serve_repeat_and_copy(tmp_path_factory.mktemp("generate_repo"), COPY_CONFIG)
    yield s
    code = s.stop()
    assert code == 0, f"mmserve exited with {code}:\n{s.text()[-5000:]}"


def sse_events(response):
    """The JSON objects of a text/event-stream body, in order."""
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events, data = [], []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            data.append(line[len("data: "):])
        elif line == "" and data:
            events.append(json.loads("\n".join(data)))
            data = []
    if data:
        events.append(json.loads("\n".join(data)))
    return events


def generate(server, model, body, stream=False, version=None):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    path += "/generate_stream" if stream else "/generate"
    return requests.post(server.base + path, data=json.dumps(body), stream=stream, timeout=60)


def test_generate_non_decoupled_flat_json(server):
    r = generate(server, "copy", {"IN": [1, 2, 3], "TEXT": "hello", "temperature": 0.5,
                                  "parameters": {"stream": False}}, version="1")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    out = r.json()
    assert out["model_name"] == "copy" and out["model_version"] == "1"
    assert out["IN_OUT"] == [1, 2, 3]
    assert out["TEXT_OUT"] == "hello"  # one element: a scalar


def test_generate_one_element_is_a_scalar(server):
    out = generate(server, "copy", {"IN": 7, "TEXT": "x"}).json()
    assert out["IN_OUT"] == 7


def test_generate_decoupled_exactly_one_response(server):
    r = generate(server, "repeat", {"IN": [42]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["OUT"] == 42 and out["IDX"] == 0


@pytest.mark.parametrize("values", [[], [1, 2]])
def test_generate_decoupled_several_or_none_is_an_error(server, values):
    r = generate(server, "repeat", {"IN": values})
    assert r.status_code == 400
    assert "generate_stream" in r.json()["error"]


def test_generate_stream_many_responses(server):
    r = generate(server, "repeat", {"IN": [5, 6, 7]}, stream=True)
    assert r.status_code == 200
    events = sse_events(r)
    assert [(e["OUT"], e["IDX"]) for e in events] == [(5, 0), (6, 1), (7, 2)]
    assert all(e["model_name"] == "repeat" for e in events)


def test_generate_stream_zero_responses(server):
    r = generate(server, "repeat", {"IN": []}, stream=True)
    assert r.status_code == 200
    assert sse_events(r) == []


def test_generate_stream_error_mid_stream(server):
    r = generate(server, "repeat", {"IN": [1, 2, 3], "FAIL_AT": 1}, stream=True)
    assert r.status_code == 200
    events = sse_events(r)
    assert events[0]["OUT"] == 1
    assert "response 1 fails" in events[1]["error"]
    assert events[2]["OUT"] == 3 and len(events) == 3


def test_generate_stream_non_decoupled(server):
    r = generate(server, "copy", {"IN": [9], "TEXT": "t"}, stream=True)
    events = sse_events(r)
    assert len(events) == 1 and events[0]["IN_OUT"] == 9


def test_generate_stream_failure_before_inference_is_plain_json(server):
    r = generate(server, "no_such_model", {"IN": [1]}, stream=True)
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert "error" in r.json()
    r = generate(server, "repeat", {"IN": ["not a number"]}, stream=True)
    assert r.status_code == 400 and "INT32" in r.json()["error"]


def test_generate_rejects_bad_json_and_bad_parameters(server):
    r = requests.post(server.base + "/v2/models/copy/generate", data="{not json", timeout=30)
    assert r.status_code == 400
    r = generate(server, "copy", {"IN": [1], "TEXT": "x", "extra": {"nested": 1}})
    assert r.status_code == 400 and "extra" in r.json()["error"]
    r = requests.get(server.base + "/v2/models/copy/generate", timeout=30)
    assert r.status_code == 405


def test_generate_stream_keeps_the_connection_alive(server):
    with requests.Session() as session:
        for n in range(3):
            r = session.post(server.base + "/v2/models/repeat/generate_stream",
                             data=json.dumps({"IN": list(range(n))}), stream=True, timeout=60)
            assert [e["IDX"] for e in sse_events(r)] == list(range(n))


def test_generate_stream_client_disconnect(server):
    body = json.dumps({"IN": list(range(50000))}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v2/models/repeat/generate_stream HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    sock.close()  # mid-stream
    # The server keeps serving.
    r = generate(server, "repeat", {"IN": [3, 4]}, stream=True)
    assert [e["OUT"] for e in sse_events(r)] == [3, 4]


def test_generate_stream_hang_up_while_the_model_is_quiet_cancels(server):
    # HOLD keeps the model's only instance thread on the request until its
    # client goes away: the next request is answered only once it has.
    body = json.dumps({"IN": [1], "HOLD": 1}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v2/models/repeat/generate_stream HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    received = b""
    while b'"OUT":1' not in received:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the stream early"
        received += chunk
    sock.close()
    r = generate(server, "repeat", {"IN": [5]}, stream=True)
    assert [e["OUT"] for e in sse_events(r)] == [5]


def test_generate_stream_concurrent(server):
    failures = []

    def run(k):
        try:
            for j in range(5):
                values = [k * 100 + j * 10 + i for i in range(j + 1)]
                r = generate(server, "repeat", {"IN": values}, stream=True)
                assert [e["OUT"] for e in sse_events(r)] == values
        except Exception as e:  # noqa: BLE001 (reported below)
            failures.append(repr(e))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
