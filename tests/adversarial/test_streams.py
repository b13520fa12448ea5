"""Streams and connections obey the current policy, and both transports
validate alike (issue 17: defects 7, 8 and 11 and their classes).

- A gRPC stream has backpressure: a client that sends and never reads holds
  a bounded number of requests and responses in the server
  (--grpc-stream-max-pending), unsent responses hold their tenant's
  concurrency slots, and usage bills only the bytes actually delivered.
- A reload that revokes a key stops an open stream and an open keep-alive
  connection at their next request; a reload's other changes (namespaces)
  apply to open streams too.
- The same bad bytes get the same answer over HTTP and gRPC.
"""
import json
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from onnx import TensorProto, helper
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from conftest import ROOT, Server, wait_for_log
from hostile import KEY_A, KEY_B, KEY_OPS, bearer, copy_model, grpc_auth, write_tenants

sys.path.insert(0, str(ROOT / "scripts"))
import make_example_models as models  # noqa: E402  (the repository's model generator)

MiB = 1 << 20
MAX_PENDING = 32  # --grpc-stream-max-pending's default


def write_echo(repo, name="echo"):
    """y = x, FP32 [n]: a response as big as its request."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], name, [x], [y])
    models._save(models._model(graph), repo / name / "1" / "model.onnx")
    (repo / name / "config.pbtxt").write_text(
        f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
        'input { name: "x" data_type: TYPE_FP32 dims: [ -1 ] }\n'
        'output { name: "y" data_type: TYPE_FP32 dims: [ -1 ] }\n')


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """team-a owns echo and add_sub with {max_concurrency: 2}; ops (admin)
    also sees identity_all_types in a repository nobody owns."""
    root = tmp_path_factory.mktemp("streams")
    repo_a, repo_types = root / "a", root / "types"
    repo_a.mkdir()
    write_echo(repo_a)
    copy_model("add_sub", repo_a)
    models._write_repo_model(repo_types, "identity_all_types", models.identity_all_types())
    path = write_tenants(root / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a],
         "quotas": {"max_concurrency": 2}},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([repo_a, repo_types], "--tenants", path).start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


# ------------------------------------------------------------------ helpers

def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def usage(server, key, tenant, model):
    """(requests, refused, bytes_out) of `tenant` for `model`, as GET /v2/usage says."""
    r = requests.get(server.base + "/v2/usage", headers=bearer(key), timeout=10)
    assert r.status_code == 200, r.text
    for t in r.json()["tenants"]:
        if t["tenant"] == tenant:
            for m in t["models"]:
                if m["name"] == model:
                    return m["requests"], t["refused"], m["bytes_out"]
            return 0, t["refused"], 0
    return 0, 0, 0


def wait_until(what, condition, deadline_s=60):
    """Waits for `condition()` (it happens; the deadline only bounds a failure)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def channel_to(server):
    # A client that does not read: without BDP probing its stream window stays
    # at grpc's 64 KiB, so no 1 MiB response can be delivered to it.
    return grpc.insecure_channel(server.grpc_url, options=[
        ("grpc.max_receive_message_length", 64 * MiB),
        ("grpc.max_send_message_length", 64 * MiB),
        ("grpc.http2.bdp_probe", 0),
    ])


def echo_request(i, elements=MiB // 4):
    r = service_pb2.ModelInferRequest(model_name="echo", id=str(i))
    x = r.inputs.add()
    x.name, x.datatype = "x", "FP32"
    x.shape.append(elements)
    r.raw_input_contents.append(bytes(elements * 4))
    return r


class Feed:
    """A request iterator the test feeds by hand; None ends it (half-close)."""

    def __init__(self):
        self.q = queue.Queue()

    def __iter__(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            yield item


def unary_add_sub(server, key):
    """A plain gRPC inference of add_sub; the exception when refused."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"),
                  grpcclient.InferInput("INPUT1", [4], "FP32")]
        for i in inputs:
            i.set_data_from_numpy(np.ones(4, dtype=np.float32))
        client.infer("add_sub", inputs, headers=grpc_auth(key))
        return None
    except InferenceServerException as e:
        return e
    finally:
        client.close()


# ------------------------------------------------------- defect 7: backpressure

def test_a_stream_never_read_holds_bounded_memory(policy):
    """Defect 7 exactly: 600 x 1 MiB requests on a stream whose client never
    reads grew RSS by ~800 MiB. Now the server reads MAX_PENDING of them,
    answers them, and then stops reading until a response is written: HTTP/2
    flow control stops the client, and memory stays bounded."""
    s = policy
    assert unary_add_sub(s, KEY_OPS) is None
    before, _, _ = usage(s, KEY_OPS, "ops", "echo")
    rss0 = rss_mib(s.proc.pid)
    sent = [0]

    def flood():
        for i in range(600):
            yield echo_request(i)
            sent[0] += 1

    channel = channel_to(s)
    call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(
        flood(), metadata=(("authorization", f"Bearer {KEY_OPS}"),))
    try:
        wait_until("the server has answered a stream's worth of requests",
                   lambda: usage(s, KEY_OPS, "ops", "echo")[0] - before >= MAX_PENDING)
        # Then the client is held back by flow control (or, without
        # backpressure, it sends all 600): wait until it stops making progress.
        last, quiet_since, end = -1, time.monotonic(), time.monotonic() + 60
        while time.monotonic() < end and sent[0] < 600:
            if sent[0] != last:
                last, quiet_since = sent[0], time.monotonic()
            elif time.monotonic() - quiet_since > 1.5:
                break
            time.sleep(0.05)
        executed = usage(s, KEY_OPS, "ops", "echo")[0] - before
        grown = rss_mib(s.proc.pid) - rss0
        assert sent[0] < 600, "the server read every request of a client that never reads"
        # No response can be delivered to this client: the server took no more
        # than its bound (a little slack for a client window larger than grpc's default).
        assert MAX_PENDING <= executed <= MAX_PENDING + 4, executed
        assert grown < 300, f"RSS grew {grown:.0f} MiB with {sent[0]} MiB sent"
        # The server stays responsive meanwhile.
        assert requests.get(s.base + "/v2/health/ready", timeout=2).status_code == 200
    finally:
        call.cancel()
        channel.close()
    assert unary_add_sub(s, KEY_OPS) is None


def test_unsent_responses_hold_quota_slots_and_only_delivered_bytes_are_billed(policy):
    """Defect 7's tenant half: with {max_concurrency: 2}, the stream's unsent
    work counts against the quota, and usage bills bytes_out only once the
    client has received them."""
    s = policy
    requests0, refused0, out0 = usage(s, KEY_A, "team-a", "echo")
    feed = Feed()
    channel = channel_to(s)
    call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(
        iter(feed), metadata=(("authorization", f"Bearer {KEY_A}"),))
    try:
        for i in range(10):
            feed.q.put(echo_request(i))

        def all_answered():
            r, f, _ = usage(s, KEY_A, "team-a", "echo")
            return (r - requests0) + (f - refused0) >= 10

        wait_until("the stream's 10 requests are answered", all_answered)
        got_requests, got_refused, got_out = usage(s, KEY_A, "team-a", "echo")
        # Two ran and wait to be written, holding both slots: the other eight
        # were refused, and nothing is billed as sent.
        assert (got_requests - requests0, got_refused - refused0) == (2, 8)
        assert got_out == out0
        # The unsent work holds the slots against the tenant's other calls too.
        refused = unary_add_sub(s, KEY_A)
        assert refused is not None and "RESOURCE_EXHAUSTED" in str(refused.status()), refused
        assert "max_concurrency" in refused.message()

        # The client reads: 2 answers and 8 refusals, in some order.
        answers = [next(call) for _ in range(10)]
        ok = [a for a in answers if not a.error_message]
        errors = [a.error_message for a in answers if a.error_message]
        assert len(ok) == 2 and all(len(a.infer_response.raw_output_contents[0]) == MiB
                                    for a in ok)
        assert len(errors) == 8 and all("max_concurrency" in e for e in errors), errors
        # Delivered now: billed, and the slots are free again.
        wait_until("the delivered bytes are billed",
                   lambda: usage(s, KEY_A, "team-a", "echo")[2] == out0 + 2 * MiB, 30)
        wait_until("the slots are free", lambda: unary_add_sub(s, KEY_A) is None, 30)
        feed.q.put(None)
        assert list(call) == []  # the stream ends cleanly
    finally:
        feed.q.put(None)
        call.cancel()
        channel.close()

    # A stream its client cancels before reading: nothing is billed as sent,
    # and its slots come back.
    requests1, _, out1 = usage(s, KEY_A, "team-a", "echo")
    feed = Feed()
    channel = channel_to(s)
    call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(
        iter(feed), metadata=(("authorization", f"Bearer {KEY_A}"),))
    try:
        feed.q.put(echo_request(100))
        feed.q.put(echo_request(101))
        wait_until("both ran", lambda: usage(s, KEY_A, "team-a", "echo")[0] == requests1 + 2)
    finally:
        call.cancel()
        feed.q.put(None)
        channel.close()
    wait_until("the cancelled stream's slots are free", lambda: unary_add_sub(s, KEY_A) is None, 30)
    assert usage(s, KEY_A, "team-a", "echo")[2] == out1


# HTTP, the same rules: one reply at a time per connection, written before the
# next pipelined request is read; a reply holds its slot until written.

def http_echo(server, key, elements, rcvbuf=16384):
    """A raw keep-alive connection with a small receive buffer, and the bytes
    of one binary echo request of `elements` FP32 (its reply as big)."""
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    # Closing it resets the connection at once (as a client that dies would).
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.connect(("127.0.0.1", server.port))
    head = json.dumps({
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [elements],
                    "parameters": {"binary_data_size": elements * 4}}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    request = (f"POST /v2/models/echo/infer HTTP/1.1\r\nHost: mmserve\r\n"
               f"Authorization: Bearer {key}\r\n"
               f"Inference-Header-Content-Length: {len(head)}\r\n"
               f"Content-Length: {len(head) + elements * 4}\r\n\r\n").encode()
    return conn, request + head + bytes(elements * 4)


def read_reply(conn):
    """Reads one HTTP reply off `conn`: (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(1 << 16)
        assert chunk, "connection closed"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = conn.recv(1 << 20)
        assert chunk, "connection closed"
        body += chunk
    return int(head.split()[1]), body


def test_an_http_client_pipelining_without_reading_holds_bounded_memory(policy):
    """The HTTP side of defect 7: a connection reads its next pipelined request
    only once its reply is written, so a client that never reads stops after
    what the sockets' buffers hold."""
    s = policy
    before, _, _ = usage(s, KEY_OPS, "ops", "echo")
    rss0 = rss_mib(s.proc.pid)
    conn, request = http_echo(s, KEY_OPS, MiB // 4)
    sent = [0]

    def flood():
        try:
            for _ in range(40):
                conn.sendall(request)
                sent[0] += 1
        except OSError:
            pass  # closed by the test

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        wait_until("a request is answered", lambda: usage(s, KEY_OPS, "ops", "echo")[0] > before)
        last, quiet_since, end = -1, time.monotonic(), time.monotonic() + 60
        while time.monotonic() < end and sent[0] < 40:
            if sent[0] != last:
                last, quiet_since = sent[0], time.monotonic()
            elif time.monotonic() - quiet_since > 1.5:
                break
            time.sleep(0.05)
        executed = usage(s, KEY_OPS, "ops", "echo")[0] - before
        assert sent[0] < 40, "the server read every request of a client that never reads"
        assert executed <= 8, executed  # what ~4 MiB of socket buffers hold, and one more
        assert rss_mib(s.proc.pid) - rss0 < 200
    finally:
        conn.shutdown(socket.SHUT_RDWR)  # wakes the sender blocked in sendall
        sender.join(10)
        conn.close()


def test_unsent_http_replies_hold_quota_slots_and_only_delivered_bytes_are_billed(policy):
    s = policy
    elements = 4 * MiB  # a 16 MiB reply: more than the sockets' buffers hold
    requests0, _, out0 = usage(s, KEY_A, "team-a", "echo")
    conns = []
    try:
        for _ in range(2):
            conn, request = http_echo(s, KEY_A, elements)
            conn.sendall(request)
            conns.append(conn)
        wait_until("both ran", lambda: usage(s, KEY_A, "team-a", "echo")[0] == requests0 + 2)
        # Two replies wait to be written: they hold team-a's two slots.
        r = requests.post(f"{s.base}/v2/models/add_sub/infer", headers=bearer(KEY_A), timeout=30,
                          json={"inputs": [
                              {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1] * 4},
                              {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1] * 4}]})
        assert r.status_code == 429 and "max_concurrency" in r.json()["error"], r.text
        assert usage(s, KEY_A, "team-a", "echo")[2] == out0  # nothing billed as sent yet
        # One client reads its reply; the other goes away without reading.
        status, body = read_reply(conns[0])
        assert status == 200 and len(body) > elements * 4
        conns[1].close()
        wait_until("the delivered reply is billed",
                   lambda: usage(s, KEY_A, "team-a", "echo")[2] == out0 + elements * 4, 30)
        wait_until("both slots are free", lambda: requests.post(
            f"{s.base}/v2/models/add_sub/infer", headers=bearer(KEY_A), timeout=30,
            json={"inputs": [
                {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1] * 4},
                {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1] * 4}]}
        ).status_code == 200 and unary_add_sub(s, KEY_A) is None, 30)
        # The reply never read is not billed.
        assert usage(s, KEY_A, "team-a", "echo")[2] == out0 + elements * 4
    finally:
        for conn in conns:
            conn.close()


# ---------------------------------------------------- defect 8: key revocation

def test_a_revoked_key_stops_open_streams_and_keep_alive_connections(tmp_path):
    """Defect 8 exactly: after a SIGHUP reload removes team-a, its open gRPC
    stream and its open keep-alive connection are refused at their next
    request. Beyond it: team-b's open stream and connection follow the reload's
    namespaces (a repository taken from it hides its model at once)."""
    repo_a, repo_b, repo_b2 = tmp_path / "a", tmp_path / "b", tmp_path / "b2"
    for repo in (repo_a, repo_b, repo_b2):
        repo.mkdir()
    copy_model("add_sub", repo_a)
    copy_model("add_sub", repo_b, "add_sub_b")
    copy_model("add_sub", repo_b2, "add_sub_b2")
    team_b = {"id": "team-b", "keys": [KEY_B], "repositories": [repo_b, repo_b2]}
    ops = {"id": "ops", "keys": [KEY_OPS], "role": "admin"}
    path = write_tenants(tmp_path / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]}, team_b, ops])
    s = Server([repo_a, repo_b, repo_b2], "--tenants", path).start()
    clients = []
    try:
        def open_stream(key):
            client = grpcclient.InferenceServerClient(s.grpc_url)
            clients.append(client)
            answers = queue.Queue()
            client.start_stream(lambda result, error: answers.put((result, error)),
                                headers=grpc_auth(key))
            return client, answers

        def ask(stream, model):
            client, answers = stream
            inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"),
                      grpcclient.InferInput("INPUT1", [4], "FP32")]
            for i in inputs:
                i.set_data_from_numpy(np.ones(4, dtype=np.float32))
            client.async_stream_infer(model, inputs)
            return answers.get(timeout=30)

        body = {"inputs": [
            {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}

        def post(session, key, model):
            return session.post(f"{s.base}/v2/models/{model}/infer", headers=bearer(key),
                                json=body, timeout=30)

        stream_a, stream_b = open_stream(KEY_A), open_stream(KEY_B)
        session_a, session_b = requests.Session(), requests.Session()
        assert ask(stream_a, "add_sub")[1] is None
        assert ask(stream_b, "add_sub_b2")[1] is None
        assert post(session_a, KEY_A, "add_sub").status_code == 200
        assert post(session_b, KEY_B, "add_sub_b2").status_code == 200

        write_tenants(path, [dict(team_b, repositories=[repo_b]), ops])
        s.proc.send_signal(signal.SIGHUP)
        wait_for_log(s, "tenants reloaded")

        # team-a: refused on its open connection and its open stream.
        r = post(session_a, KEY_A, "add_sub")
        assert r.status_code == 401, r.text
        assert "API key is not valid" in r.json()["error"]
        result, error = ask(stream_a, "add_sub")
        assert result is None and error is not None
        assert "UNAUTHENTICATED" in str(error.status()), error
        assert "revoked" in error.message(), error.message()
        # A new stream with the revoked key is refused as well (at once: the
        # client may learn it before it sends anything).
        client, answers = open_stream(KEY_A)
        try:
            _, error = ask((client, answers), "add_sub")
        except InferenceServerException:  # "the stream is no longer in valid state" ...
            _, error = answers.get(timeout=30)  # ... the error is in the callback
        assert error is not None and "UNAUTHENTICATED" in str(error.status()), error

        # team-b: its open stream and connection see the reloaded namespace.
        result, error = ask(stream_b, "add_sub_b2")
        assert result is None and "unknown model" in error.message().lower(), error
        result, error = ask(stream_b, "add_sub_b")
        assert error is None, error
        assert post(session_b, KEY_B, "add_sub_b2").status_code == 404
        assert post(session_b, KEY_B, "add_sub_b").status_code == 200
    finally:
        for client in clients:
            client.stop_stream()
            client.close()
        assert s.stop() == 0, s.text()[-3000:]


# ------------------------------------------- defect 11: both transports alike

# KServe datatype and element size of each identity_all_types input.
TYPES = {"bool": ("BOOL", 1), "uint8": ("UINT8", 1), "uint16": ("UINT16", 2),
         "uint32": ("UINT32", 4), "uint64": ("UINT64", 8), "int8": ("INT8", 1),
         "int16": ("INT16", 2), "int32": ("INT32", 4), "int64": ("INT64", 8),
         "fp16": ("FP16", 2), "fp32": ("FP32", 4), "fp64": ("FP64", 8),
         "bytes": ("BYTES", None), "bf16": ("BF16", 2)}


def all_types_inputs(bad):
    """Every input of identity_all_types as raw bytes: one valid element each,
    except the inputs `bad` maps to (shape, bytes)."""
    out = []
    for suffix, _ in models.ALL_TYPES:
        datatype, size = TYPES[suffix]
        if suffix in bad:
            shape, data = bad[suffix]
        else:
            shape, data = [1], (b"\0\0\0\0" if size is None else bytes(size))
        out.append((f"in_{suffix}", datatype, shape, data))
    return out


def http_binary(server, inputs, shm_inputs=()):
    header = {"inputs": []}
    for name, datatype, shape, data in inputs:
        header["inputs"].append({"name": name, "datatype": datatype, "shape": shape,
                                 "parameters": {"binary_data_size": len(data)}})
    for name, datatype, shape, region, size in shm_inputs:
        header["inputs"].append({"name": name, "datatype": datatype, "shape": shape,
                                 "parameters": {"shared_memory_region": region,
                                                "shared_memory_byte_size": size}})
    head = json.dumps(header).encode()
    r = requests.post(server.base + "/v2/models/identity_all_types/infer",
                      data=head + b"".join(i[3] for i in inputs),
                      headers={**bearer(KEY_OPS), "Inference-Header-Content-Length": str(len(head))},
                      timeout=30)
    return r.status_code, r.json().get("error")


def grpc_raw(inputs, shm_inputs=()):
    r = service_pb2.ModelInferRequest(model_name="identity_all_types")
    for name, datatype, shape, data in inputs:
        t = r.inputs.add()
        t.name, t.datatype = name, datatype
        t.shape.extend(shape)
        r.raw_input_contents.append(data)
    for name, datatype, shape, region, size in shm_inputs:
        t = r.inputs.add()
        t.name, t.datatype = name, datatype
        t.shape.extend(shape)
        t.parameters["shared_memory_region"].string_param = region
        t.parameters["shared_memory_byte_size"].int64_param = size
    return r


def grpc_answers(server, request):
    """(code, message) of the unary call, and the stream's error_message."""
    metadata = (("authorization", f"Bearer {KEY_OPS}"),)
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            stub.ModelInfer(request, metadata=metadata, timeout=30)
            unary = (grpc.StatusCode.OK, "")
        except grpc.RpcError as e:
            unary = (e.code(), e.details())
        [streamed] = list(stub.ModelStreamInfer(iter([request]), metadata=metadata, timeout=30))
    return unary, streamed.error_message


def test_grpc_refuses_raw_bool_bytes_other_than_0_and_1_as_http_does(policy):
    """Defect 11 exactly: raw BOOL bytes [0, 1, 2] are refused over gRPC
    (unary and stream) with the message HTTP gives for the same bytes."""
    inputs = all_types_inputs({"bool": ([3], bytes([0, 1, 2]))})
    status, http_message = http_binary(policy, inputs)
    assert status == 400
    assert http_message == "input 'in_bool': BOOL element 2 is 2, expected 0 or 1"
    (code, message), streamed = grpc_answers(policy, grpc_raw(inputs))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, message)
    assert message == http_message
    assert streamed == http_message
    # The same request with valid BOOL bytes passes both ways.
    good = all_types_inputs({"bool": ([3], bytes([0, 1, 1]))})
    assert http_binary(policy, good) == (200, None)
    assert grpc_answers(policy, grpc_raw(good)) == ((grpc.StatusCode.OK, ""), "")


@pytest.mark.parametrize("bad,words", [
    ({"fp32": ([2], bytes(6))}, "input 'in_fp32': shape [2] of FP32 needs 8 bytes, got 6"),
    ({"fp16": ([1], bytes(3))}, "input 'in_fp16': shape [1] of FP16 needs 2 bytes, got 3"),
    ({"bf16": ([2], bytes(2))}, "input 'in_bf16': shape [2] of BF16 needs 4 bytes, got 2"),
    ({"bytes": ([1], b"\x05\0\0\0ab")},
     "input 'in_bytes': BYTES element 0 declares 5 bytes but only 2 remain"),
    ({"bytes": ([2], b"\x01\0\0\0a")}, "input 'in_bytes': BYTES data holds 1 elements"),
    ({"bool": ([2], bytes([1, 255]))}, "input 'in_bool': BOOL element 1 is 255"),
], ids=["fp32-size", "fp16-size", "bf16-size", "bytes-framing", "bytes-count", "bool-255"])
def test_both_transports_refuse_the_same_bytes_with_the_same_words(policy, bad, words):
    inputs = all_types_inputs(bad)
    status, http_message = http_binary(policy, inputs)
    assert status == 400 and words in http_message, http_message
    (code, message), streamed = grpc_answers(policy, grpc_raw(inputs))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message == http_message and streamed == http_message


def test_bool_bytes_in_shared_memory_are_checked_on_both_transports(policy):
    """Bytes that come through no codec (a shared-memory region) meet the same
    rule, with the same words, on both transports."""
    key = f"/mmserve_streams_{os.getpid()}_bool"
    handle = shm.create_shared_memory_region("bools", key, 3)
    try:
        shm.set_shared_memory_region(handle, [np.array([0, 1, 2], dtype=np.uint8)])
        r = requests.post(policy.base + "/v2/systemsharedmemory/region/bools/register",
                          headers=bearer(KEY_OPS), json={"key": key, "offset": 0, "byte_size": 3},
                          timeout=10)
        assert r.status_code == 200, r.text
        inputs = [i for i in all_types_inputs({}) if i[0] != "in_bool"]
        shm_inputs = [("in_bool", "BOOL", [3], "bools", 3)]
        status, http_message = http_binary(policy, inputs, shm_inputs)
        assert status == 400 and "input 'in_bool': BOOL element 2 is 2, expected 0 or 1" in \
            http_message, http_message
        (code, message), streamed = grpc_answers(policy, grpc_raw(inputs, shm_inputs))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message == http_message and streamed == http_message
    finally:
        requests.post(policy.base + "/v2/systemsharedmemory/region/bools/unregister",
                      headers=bearer(KEY_OPS), timeout=10)
        shm.destroy_shared_memory_region(handle)
