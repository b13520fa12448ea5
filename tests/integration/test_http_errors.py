"""Every bad input gets the KServe error JSON, the right status, a message
naming the problem, and the server keeps serving."""
import http.client
import json
import socket
import struct

import numpy as np
import pytest
import requests

from conftest import EXAMPLES, Server

GOOD = {"inputs": [
    {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
    {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}


def with_input0(**changes):
    body = json.loads(json.dumps(GOOD))
    body["inputs"][0].update(changes)
    return json.dumps(body)


def still_serving(server):
    r = requests.post(server.base + "/v2/models/add_sub/infer", data=json.dumps(GOOD))
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [2, 3, 4, 5]


def expect_error(r, status, *words):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    err = r.json()["error"]
    for w in words:
        assert w in err, (w, err)
    return err


BAD_BODIES = [
    ("malformed json", "{\"inputs\": [", 400, []),
    ("truncated json", json.dumps(GOOD)[:-7], 400, []),
    ("not an object", "[1,2,3]", 400, []),
    ("empty body", "", 400, []),
    ("wrong datatype", with_input0(datatype="INT64"), 400, ["INPUT0", "FP32", "INT64"]),
    ("unknown datatype", with_input0(datatype="FLOAT"), 400, ["FLOAT"]),
    ("count mismatch", with_input0(data=[1, 2, 3]), 400, ["INPUT0", "4", "3"]),
    ("shape mismatch", with_input0(shape=[2, 2]), 400, ["INPUT0", "[2,2]"]),
    ("negative dim", with_input0(shape=[-4]), 400, ["INPUT0"]),
    ("overflowing dims", with_input0(shape=[2**40, 2**40, 2**40]), 400, ["INPUT0"]),
    ("missing input", json.dumps({"inputs": GOOD["inputs"][:1]}), 400, ["INPUT1"]),
    ("unknown input", json.dumps({"inputs": GOOD["inputs"] + [
        {"name": "BOGUS", "shape": [1], "datatype": "FP32", "data": [1]}]}), 400, ["BOGUS"]),
    ("duplicate input", json.dumps({"inputs": GOOD["inputs"] + GOOD["inputs"][:1]}), 400, ["INPUT0"]),
    ("non-numeric data", with_input0(data=["a", "b", "c", "d"]), 400, ["INPUT0"]),
    ("bool for float", with_input0(data=[True, False, True, False]), 400, ["INPUT0"]),
    ("missing shape", json.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "data": [1]}]}),
     400, ["shape"]),
    ("unknown output", json.dumps(dict(GOOD, outputs=[{"name": "NOPE"}])), 400, ["NOPE"]),
]


@pytest.mark.parametrize("name,body,status,words", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_json_bodies(server, name, body, status, words):
    r = requests.post(server.base + "/v2/models/add_sub/infer", data=body)
    expect_error(r, status, *words)
    still_serving(server)


def test_unknown_model_and_version(server):
    r = requests.post(server.base + "/v2/models/nope/infer", data=json.dumps(GOOD))
    expect_error(r, 404, "nope")
    r = requests.post(server.base + "/v2/models/add_sub/versions/7/infer", data=json.dumps(GOOD))
    expect_error(r, 404, "7")
    r = requests.post(server.base + "/v2/models/add_sub/versions/x1/infer", data=json.dumps(GOOD))
    expect_error(r, 404, "x1")
    expect_error(requests.get(server.base + "/v2/models/nope"), 404, "nope")
    expect_error(requests.get(server.base + "/v2/models/nope/config"), 404, "nope")
    assert requests.get(server.base + "/v2/models/nope/ready").status_code == 400
    still_serving(server)


def test_unsupported_method_and_path(server):
    r = requests.get(server.base + "/v2/models/add_sub/infer")
    expect_error(r, 405)
    assert r.headers["Allow"] == "POST"
    expect_error(requests.delete(server.base + "/v2/models/add_sub"), 405)
    expect_error(requests.get(server.base + "/v3/whatever"), 404)
    expect_error(requests.get(server.base + "/"), 404)
    expect_error(requests.get(server.base + "/v2/models/add_sub/bogus"), 404)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/v2/models/%zz")  # http.client sends the path as is
    resp = conn.getresponse()
    assert resp.status == 400 and "percent-encoding" in json.loads(resp.read())["error"]
    conn.close()
    still_serving(server)


def test_invalid_utf8_string_in_json(server):
    # A BYTES input whose JSON string holds a lone continuation byte.
    body = b'{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["a\x80b"]}]}'
    r = requests.post(server.base + "/v2/models/string_int/infer", data=body)
    expect_error(r, 400, "UTF-8")
    still_serving(server)


def binary_request(header_extra_bytes=0, tensor_bytes=None):
    a = np.arange(4, dtype=np.float32).tobytes()
    b = np.ones(4, dtype=np.float32).tobytes()
    header = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}).encode()
    data = tensor_bytes if tensor_bytes is not None else a + b
    return header + data, len(header) + header_extra_bytes


def test_binary_request_good(server):
    body, hlen = binary_request()
    r = requests.post(server.base + "/v2/models/add_sub/infer", data=body,
                      headers={"Inference-Header-Content-Length": str(hlen)})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1, 2, 3, 4]


@pytest.mark.parametrize("tensor_bytes", [b"\0" * 31, b"\0" * 33, b""], ids=["short", "long", "none"])
def test_binary_section_size_mismatch(server, tensor_bytes):
    body, hlen = binary_request(tensor_bytes=tensor_bytes)
    r = requests.post(server.base + "/v2/models/add_sub/infer", data=body,
                      headers={"Inference-Header-Content-Length": str(hlen)})
    expect_error(r, 400)
    still_serving(server)


@pytest.mark.parametrize("hlen", ["100000", "-1", "abc", "5"])
def test_bad_inference_header_length(server, hlen):
    body, _ = binary_request()
    r = requests.post(server.base + "/v2/models/add_sub/infer", data=body,
                      headers={"Inference-Header-Content-Length": hlen})
    expect_error(r, 400)
    still_serving(server)


def test_garbage_http_is_answered_and_server_survives(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 400")
    still_serving(server)


def test_body_over_max_request_bytes_is_413(tmp_path):
    s = Server([EXAMPLES], "--max-request-bytes", "4096").start()
    try:
        big = json.dumps({"inputs": [{"name": "INPUT0", "shape": [2000], "datatype": "FP32",
                                      "data": [1.5] * 2000}]})
        assert len(big) > 4096
        r = requests.post(s.base + "/v2/models/add_sub/infer", data=big)
        expect_error(r, 413, "4096")
        # A body far larger than the socket buffers: the client still reads the 413
        # (lingering close), not a connection reset.
        r = requests.post(s.base + "/v2/models/add_sub/infer", data=b"x" * (8 << 20))
        expect_error(r, 413, "--max-request-bytes")
        # Chunked bodies are counted as they arrive.
        r = requests.post(s.base + "/v2/models/add_sub/infer",
                          data=(b"y" * 1024 for _ in range(16)))
        expect_error(r, 413)
        still_serving(s)
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_chunked_request_body(server):
    body = json.dumps(GOOD).encode()
    r = requests.post(server.base + "/v2/models/add_sub/infer",
                      data=(body[i:i + 7] for i in range(0, len(body), 7)))
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [2, 3, 4, 5]


def test_expect_100_continue(server):
    """curl sends large bodies only after "HTTP/1.1 100 Continue"."""
    body = json.dumps(GOOD).encode()
    head = (b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = sock.recv(1)
            assert chunk, "connection closed before 100 Continue"
            interim += chunk
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    status, _, payload = data.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200")
    assert json.loads(payload)["outputs"][0]["data"] == [2, 3, 4, 5]
