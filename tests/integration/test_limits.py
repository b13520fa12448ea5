"""Hardened limits (issue 7) on both transports: tensors per request,
elements per tensor, header size, and clients that are slow or hold
connections (slowloris, idle, too many connections). Every refusal names the
limit, and the server keeps serving everyone else."""
import json
import socket
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, Server, hold_served_connections, wait_for_log


def add_sub_body(n=4, extra_inputs=0):
    inputs = [{"name": f"INPUT{i}", "shape": [n], "datatype": "FP32", "data": [1.0] * n}
              for i in range(2)]
    inputs += [{"name": f"EXTRA{i}", "shape": [1], "datatype": "FP32", "data": [0.0]}
               for i in range(extra_inputs)]
    return json.dumps({"inputs": inputs})


def grpc_inputs(count, n):
    """INPUT0..INPUT{count-1}, each FP32 [n] of ones."""
    inputs = []
    for i in range(count):
        t = grpcclient.InferInput(f"INPUT{i}", [n], "FP32")
        t.set_data_from_numpy(np.ones(n, np.float32))
        inputs.append(t)
    return inputs


def serves(server):
    r = requests.post(server.base + "/v2/models/add_sub/infer", data=add_sub_body(), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [2.0] * 4


@pytest.fixture(scope="module")
def limited():
    s = Server([EXAMPLES], "--max-tensors-per-request", "4", "--max-elements-per-tensor",
               "1000").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def test_too_many_tensors_is_refused_on_both_transports(limited):
    r = requests.post(limited.base + "/v2/models/add_sub/infer", data=add_sub_body(extra_inputs=3))
    assert r.status_code == 400, r.text
    assert "5 inputs and 0 requested outputs; the limit is 4 tensors per request" in r.json()["error"]
    # Requested outputs count too.
    body = json.loads(add_sub_body(extra_inputs=1))
    body["outputs"] = [{"name": "OUTPUT0"}, {"name": "OUTPUT1"}]
    r = requests.post(limited.base + "/v2/models/add_sub/infer", json=body)
    assert r.status_code == 400 and "--max-tensors-per-request" in r.json()["error"], r.text
    g = grpcclient.InferenceServerClient(limited.grpc_url)
    with pytest.raises(InferenceServerException) as e:
        g.infer("add_sub", grpc_inputs(5, 4))
    assert "INVALID_ARGUMENT" in str(e.value.status()), e.value
    assert "the limit is 4 tensors per request" in e.value.message()
    serves(limited)


def test_too_many_elements_is_refused_on_both_transports(limited):
    r = requests.post(limited.base + "/v2/models/add_sub/infer", data=add_sub_body(n=1001))
    assert r.status_code == 400, r.text
    assert ("input 'INPUT0' has shape [1001], 1001 elements; the limit is 1000 per tensor"
            in r.json()["error"]), r.text
    g = grpcclient.InferenceServerClient(limited.grpc_url)
    with pytest.raises(InferenceServerException) as e:
        g.infer("add_sub", grpc_inputs(2, 1001))
    assert "--max-elements-per-tensor" in e.value.message(), e.value
    serves(limited)


def test_oversized_headers_are_refused_on_both_transports(limited):
    # HTTP: 431, naming the limit, and the connection is closed.
    r = requests.post(limited.base + "/v2/models/add_sub/infer", data=add_sub_body(),
                      headers={"X-Padding": "p" * (20 << 10)})
    assert r.status_code == 431, r.text
    assert ("request headers exceed the limit of 16384 bytes (--max-header-bytes)"
            in r.json()["error"]), r.text
    # Many small headers add up the same way.
    many = {f"X-H{i}": "v" * 100 for i in range(200)}
    r = requests.get(limited.base + "/v2/models/add_sub", headers=many)
    assert r.status_code == 431, r.text
    # gRPC: metadata over the same limit is refused. gRPC closes the
    # connection it came on, so that client has a channel (and subchannel) of
    # its own: a well-behaved client's calls do not ride a closing connection.
    bad = grpcclient.InferenceServerClient(
        limited.grpc_url, channel_args=[("grpc.use_local_subchannel_pool", 1)])
    with pytest.raises(InferenceServerException):
        bad.get_model_metadata("add_sub", headers={"x-padding": "p" * (20 << 10)})
    bad.close()
    g = grpcclient.InferenceServerClient(limited.grpc_url)
    assert g.get_model_metadata("add_sub").name == "add_sub"
    serves(limited)


# ------------------------------------------------- slow and idle clients

@pytest.fixture(scope="module")
def impatient():
    """A server that gives clients 1 s (the default is 60); debug logs say
    which phase timed out."""
    s = Server([EXAMPLES], "--read-timeout-ms", "1000", "--log-level", "debug").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def closed_by_server(sock, deadline_s=60):
    """Reads until the server closes the connection; True if it did (EOF or
    reset) within the deadline, which is far longer than any timeout here."""
    sock.settimeout(deadline_s)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_a_slowloris_head_is_cut_off_and_others_are_served(impatient):
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", impatient.port), timeout=30)
        s.sendall(b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(s)
    # Everyone else is served meanwhile (no thread is held by the slow ones).
    serves(impatient)
    for s in socks:
        try:
            s.sendall(b"a")  # a trickle does not extend the head's time
        except OSError:
            pass
    for s in socks:
        assert closed_by_server(s)
        s.close()
    wait_for_log(impatient, "request head not done within its time limit", 20)
    serves(impatient)


def test_an_idle_connection_is_closed(impatient):
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=30) as s:
        # One request, then silence: keep-alive lasts the read timeout.
        s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        assert closed_by_server(s)


def test_a_slow_body_is_cut_off(impatient):
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=30) as s:
        s.sendall(b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"inputs\":")
        assert closed_by_server(s)
    wait_for_log(impatient, "request body not done within its time limit")
    serves(impatient)


def test_a_client_that_never_reads_its_replies_is_cut_off(impatient):
    # Pipelined requests whose replies the client never reads: once the
    # socket buffers are full the server's writes (and then its reads) wait
    # on the client, past their time limits.
    request = b"GET /v2/models/add_sub HTTP/1.1\r\nHost: x\r\n\r\n"
    # The small receive buffer is set before connecting, so that the window
    # the connection starts with is small too (set after, the kernel may
    # already have taken megabytes of replies in: seen once, every reply
    # arrived and the test failed).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(("127.0.0.1", impatient.port))
        me = "127.0.0.1:%d:" % s.getsockname()[1]
        s.settimeout(60)
        try:
            for _ in range(100):
                s.sendall(request * 500)
        except OSError:
            pass  # the server closed the connection while we were still sending
        wait_for_log(impatient, me)
        line = next(l for l in impatient.text().splitlines() if me in l)
        assert "not done within its time limit; closing it" in line, line
        received = 0
        try:
            while chunk := s.recv(65536):
                received += len(chunk)
        except ConnectionResetError:
            pass
        one = len(requests.get(impatient.base + "/v2/models/add_sub").content)
        assert received < 50000 * one  # cut off long before the last reply
    serves(impatient)


def test_a_grpc_connection_that_never_speaks_is_closed(impatient):
    with socket.create_connection(("127.0.0.1", impatient.grpc_port), timeout=30) as s:
        assert closed_by_server(s)
    g = grpcclient.InferenceServerClient(impatient.grpc_url)
    assert g.is_server_ready()


def test_over_max_connections_is_503_and_room_comes_back():
    s = Server([EXAMPLES], "--max-connections", "3").start()
    try:
        held = hold_served_connections(s, 3)
        r = requests.get(s.base + "/v2/health/live", timeout=30)
        assert r.status_code == 503 and "too many connections" in r.json()["error"], r.text
        assert r.headers["Retry-After"] == "1"
        for h in held:
            h.close()
        # The server sees the closes as they arrive; then there is room again.
        end = time.monotonic() + 60
        while True:
            r = requests.get(s.base + "/v2/health/live", timeout=30)
            if r.status_code == 200 or time.monotonic() > end:
                break
            time.sleep(0.05)
        assert r.status_code == 200, r.text
        # The refusal is logged after its reply is sent, and the log comes through a pipe.
        wait_for_log(s, "connection(s) refused so far")
    finally:
        assert s.stop() == 0, s.text()[-3000:]
