"""Queue policies through the real interfaces: the "priority" and "timeout"
request parameters, a full queue, and a request that times out in the queue,
over HTTP and gRPC.

A "busy" model (an ONNX Loop of N iterations, N from the request) holds the
model's only instance for seconds while the other requests queue behind it;
the margins are three orders of magnitude. A scenario that finds the
instance free before its last step (a machine busier than that) runs again
with a longer slow request (while_instance_held), so timing decides how long
a test takes, never whether it passes.
"""
import contextlib
import threading
import time

import numpy as np
import onnx
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from conftest import Server

BUSY_CONFIG = """name: "busy"
platform: "onnxruntime_onnx"
max_batch_size: 1
input { name: "n" data_type: TYPE_INT64 dims: [ 1 ] }
input { name: "x" data_type: TYPE_FP32 dims: [ 1 ] }
output { name: "y" data_type: TYPE_FP32 dims: [ 1 ] }
dynamic_batching {
  priority_levels: 2
  default_priority_level: 2
  default_queue_policy { max_queue_size: 2 allow_timeout_override: true }
}
"""
SLOW_N = 2_000_000  # seconds of work (~2 µs an iteration); the steps below take milliseconds


def busy_model():
    """y = x + n: a Loop that adds 1 to x, n times."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["n"], ["count"], keepdims=0),
         helper.make_node("Loop", ["count", "true", "x"], ["y"], body=body)],
        "busy",
        [helper.make_tensor_value_info("n", TensorProto.INT64, [None, 1]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor("true", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("busy")
    (repo / "busy" / "1").mkdir(parents=True)
    onnx.save(busy_model(), str(repo / "busy" / "1" / "model.onnx"))
    (repo / "busy" / "config.pbtxt").write_text(BUSY_CONFIG)
    # No inline execution: the busy model's cost depends on its input, and a
    # slow request run inline would hold an HTTP thread (and the connections
    # it serves) instead of the execution slot.
    s = Server([repo], "--execution-slots", "1", "--inline-execution-max-us", "0",
               "--log-level", "debug").start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def body(n, params=None):
    b = {"inputs": [{"name": "n", "datatype": "INT64", "shape": [1, 1], "data": [n]},
                    {"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [0.5]}]}
    if params:
        b["parameters"] = params
    return b


def post(server, b):
    r = requests.post(server.base + "/v2/models/busy/infer", json=b, timeout=600)
    return r.status_code, r.json()


def busy_inputs(module, n):
    """The busy model's inputs for tritonclient.http or .grpc."""
    inputs = [module.InferInput("n", [1, 1], "INT64"), module.InferInput("x", [1, 1], "FP32")]
    inputs[0].set_data_from_numpy(np.array([[n]], np.int64))
    inputs[1].set_data_from_numpy(np.array([[0.5]], np.float32))
    return inputs


def grpc_inputs(n):
    return busy_inputs(grpcclient, n)


def test_bad_priority_and_timeout_are_invalid_on_both_transports(busy_server):
    for params, word in (({"priority": 3}, "priority 3"), ({"priority": -1}, "priority -1"),
                         ({"timeout": -5}, "timeout -5"), ({"priority": "high"}, "integer"),
                         ({"timeout": 4_000_000_000}, "one hour")):
        code, out = post(busy_server, body(1, params))
        assert code == 400 and word in out["error"], (params, out)
    client = grpcclient.InferenceServerClient(busy_server.grpc_url)
    try:
        with pytest.raises(InferenceServerException) as e:
            client.infer("busy", grpc_inputs(1), priority=3)
        assert e.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "1 (highest) to 2" in e.value.message()
        result = client.infer("busy", grpc_inputs(3), priority=1)
        assert result.as_numpy("y")[0, 0] == 3.5
    finally:
        client.close()
    code, out = post(busy_server, body(2, {"priority": 1, "timeout": 1_000_000}))
    assert code == 200 and out["outputs"][0]["data"] == [2.5]


def http_inputs(n):
    return busy_inputs(httpclient, n)


def test_queue_full_and_queue_timeout_reach_the_client(busy_server):
    slow = {}

    def run_slow():
        slow["answer"] = post(busy_server, body(SLOW_N))

    t = threading.Thread(target=run_slow)
    t.start()
    http = httpclient.InferenceServerClient(busy_server.url, concurrency=4)
    grpc = grpcclient.InferenceServerClient(busy_server.grpc_url)
    try:
        # Until the slow request holds the instance, a fast one just runs; from
        # then on it queues, and with a 1 ms timeout it comes back 504.
        while True:
            code, out = post(busy_server, body(1, {"timeout": 1000}))
            if code != 200:
                break
        # Waited past its timeout: DEADLINE_EXCEEDED, and never executed.
        assert code == 504, out
        assert "past its timeout of 1.000 ms; not executed" in out["error"], out
        with pytest.raises(InferenceServerException) as e:
            grpc.infer("busy", grpc_inputs(1), timeout=500)
        assert e.value.status() == "StatusCode.DEADLINE_EXCEEDED", e.value.message()
        # Three more while the instance is busy: two wait (max_queue_size 2) and
        # one, whichever arrives last, is refused at once.
        pending = [http.async_infer("busy", http_inputs(1)) for _ in range(3)]
        outcomes = []
        for p in pending:
            try:
                outcomes.append(p.get_result().as_numpy("y")[0, 0])
            except InferenceServerException as err:
                outcomes.append(err)
        refused = [o for o in outcomes if isinstance(o, InferenceServerException)]
        assert len(refused) == 1, outcomes
        assert "429" in str(refused[0].status()), refused[0]
        assert "queue full for model 'busy' (2 waiting" in refused[0].message()
        assert sorted(o for o in outcomes if not isinstance(o, InferenceServerException)) == [1.5, 1.5]
    finally:
        http.close()
        grpc.close()
        t.join()
    assert slow["answer"][0] == 200, slow


def test_a_full_queue_over_grpc_and_priority_room(busy_server):
    grpc = grpcclient.InferenceServerClient(busy_server.grpc_url)
    try:
        with instance_held(busy_server):
            results = []
            done = threading.Event()

            def callback(result, error):
                results.append((result, error))
                if len(results) == 4:
                    done.set()

            # Priority 2 (the default) holds two; a third is refused; priority 1
            # has its own room and is served first once the instance is free.
            for _ in range(3):
                grpc.async_infer("busy", grpc_inputs(1), callback)
            grpc.async_infer("busy", grpc_inputs(2), callback, priority=1)
            done.wait(600)
            errors = [e for _, e in results if e is not None]
            assert len(errors) == 1, results
            assert errors[0].status() == "StatusCode.RESOURCE_EXHAUSTED"
            assert "queue full" in errors[0].message()
            values = sorted(r.as_numpy("y")[0, 0] for r, e in results if e is None)
            assert values == [1.5, 1.5, 2.5]
    finally:
        grpc.close()


def raw_infer(server, b):
    """Sends an inference request on a socket of its own and reads nothing."""
    import json
    import socket
    payload = json.dumps(b).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v2/models/busy/infer HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
                 + payload)
    return sock


def probe(server):
    """429 while the default level's queue is full; else the probe queues and
    times out after 1 ms (504), leaving the place free again."""
    return post(server, body(1, {"timeout": 1000}))


@contextlib.contextmanager
def instance_held(server, n=SLOW_N):
    """Runs a slow request (n iterations) in the background and enters once it
    holds the model's only instance; yields its answer holder ({} until it
    ends). On exit, waits for it and checks that it succeeded."""
    slow = {}
    t = threading.Thread(target=lambda: slow.setdefault("answer", post(server, body(n))))
    t.start()
    try:
        while probe(server)[0] == 200:
            pass  # until the slow request holds the instance
        yield slow
    finally:
        t.join()
    assert slow["answer"][0] == 200, slow


class FreedEarly(Exception):
    """The slow request ended before the steps that needed the instance held
    were done: a machine slower than the margin (a busy CI runner)."""


def while_instance_held(server, scenario, n=3 * SLOW_N, tries=3):
    """Runs scenario(slow) inside instance_held(server, n); when the slow
    request ends too early (the scenario raises FreedEarly), runs it again
    with one four times as long. How long the test takes depends on the
    machine; whether it passes does not."""
    for _ in range(tries):
        try:
            with instance_held(server, n) as slow:
                scenario(slow)
            return
        except FreedEarly as e:
            print(f"the slow request ({n} iterations) ended too early ({e}); again, longer")
            n *= 4
    pytest.fail(f"the slow request ended too early {tries} times")


def wait_for(server, code, what, resend=lambda: None):
    """Probes until the probe gets `code`. A probe holds a queue place for 1 ms:
    a request arriving then is refused (429), so `resend` sends again whatever
    was refused. A probe that runs (200) finds the instance free: FreedEarly."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got, out = probe(server)
        if got == code:
            return out
        if got == 200:
            raise FreedEarly(f"{what}: a probe ran")
        resend()
    pytest.fail(f"{what}: the probe never got {code}; last {got} {out}\n{server.text()[-3000:]}")


class RawClients:
    """Requests on sockets of their own, answered or not; resend() replaces
    those that were answered (refused because a probe held the place)."""

    def __init__(self, server, n):
        self.server = server
        self.socks = [raw_infer(server, body(1)) for _ in range(n)]

    def resend(self):
        import select
        for i, sock in enumerate(self.socks):
            if select.select([sock], [], [], 0)[0]:
                answer = sock.recv(65536)
                if b" 200 " in answer.split(b"\r\n")[0]:
                    raise FreedEarly("a queued HTTP request ran")
                assert b" 429 " in answer.split(b"\r\n")[0], answer
                sock.close()
                self.socks[i] = raw_infer(self.server, body(1))

    def hang_up(self):
        for sock in self.socks:
            sock.close()
        self.socks = []


def test_a_client_that_goes_away_frees_its_queue_place_and_its_request_never_runs(busy_server):
    grpc = grpcclient.InferenceServerClient(busy_server.grpc_url)

    def scenario(slow):
        cancelled_before = busy_server.text().count("cancelled by its client while queued")
        raw = RawClients(busy_server, 2)
        try:
            # HTTP: two clients fill the queue (max_queue_size 2), then hang up.
            out = wait_for(busy_server, 429, "two HTTP requests queued", raw.resend)
            assert "queue full for model 'busy' (2 waiting" in out["error"], out
            raw.hang_up()
            wait_for(busy_server, 504, "the HTTP clients' places freed")
            # gRPC: a call its client cancels leaves the queue too.
            raw = RawClients(busy_server, 1)
            calls = []

            def send_grpc():
                call = {"done": threading.Event()}

                def callback(result, error):
                    call["error"] = error
                    call["done"].set()

                call["call"] = grpc.async_infer("busy", grpc_inputs(1), callback)
                calls.append(call)

            def resend():
                raw.resend()
                if calls[-1]["done"].is_set():  # refused: the probe held the place
                    if calls[-1]["error"] is None:
                        raise FreedEarly("a queued gRPC call ran")
                    assert calls[-1]["error"].status() == "StatusCode.RESOURCE_EXHAUSTED"
                    send_grpc()

            send_grpc()
            wait_for(busy_server, 429, "an HTTP and a gRPC request queued", resend)
            calls[-1]["call"].cancel()
            assert calls[-1]["done"].wait(60)
            if calls[-1]["error"] is None:
                raise FreedEarly("the gRPC call ran before it was cancelled")
            assert calls[-1]["error"].status() == "StatusCode.CANCELLED", calls[-1]["error"]
            wait_for(busy_server, 504, "the gRPC client's place freed")
            raw.hang_up()
            wait_for(busy_server, 504, "the last HTTP client's place freed")
            if slow.get("answer") is not None:  # all of it while the slow request ran
                raise FreedEarly("the slow request ended before the last step")
            log = busy_server.text()
            # The four went away while queued: answered CANCELLED, never executed.
            assert log.count("cancelled by its client while queued; not executed") - cancelled_before == 4, \
                log[-3000:]
        finally:
            raw.hang_up()

    try:
        while_instance_held(busy_server, scenario)
    finally:
        grpc.close()


def test_a_cancelled_stream_frees_the_places_of_its_queued_requests(busy_server):
    grpc = grpcclient.InferenceServerClient(busy_server.grpc_url)

    def scenario(slow):
        cancelled_before = busy_server.text().count("cancelled by its client while queued")
        refused, answered = [], []
        grpc.start_stream(lambda result, error: (refused if error else answered).append(error))
        try:
            sent = 0

            def resend():
                nonlocal sent
                if answered:
                    raise FreedEarly("a queued stream request ran")
                while sent < 2 + len(refused):  # one more for each refused by a probe
                    grpc.async_stream_infer("busy", grpc_inputs(1))
                    sent += 1

            resend()
            wait_for(busy_server, 429, "two stream requests queued", resend)
            assert all("queue full" in e.message() for e in refused), refused
            grpc.stop_stream(cancel_requests=True)
            wait_for(busy_server, 504, "the stream's places freed")
            if slow.get("answer") is not None or answered:
                raise FreedEarly("the slow request ended before the last step")
            log = busy_server.text()
            assert log.count("cancelled by its client while queued; not executed") - cancelled_before == 2, \
                log[-3000:]
        finally:
            grpc.stop_stream(cancel_requests=True)

    try:
        while_instance_held(busy_server, scenario)
    finally:
        grpc.close()


def test_dynamic_batching_returns_exactly_the_unbatched_outputs(tmp_path):
    from conftest import EXAMPLES
    import shutil

    # The same MLP twice: "mlp_batched" with dynamic batching and a delay that
    # gathers the concurrent requests below, and the example without.
    shutil.copytree(EXAMPLES / "mlp_classifier", tmp_path / "mlp_batched")
    config = (EXAMPLES / "mlp_classifier" / "config.pbtxt").read_text()
    config = config.replace('name: "mlp_classifier"', 'name: "mlp_batched"')
    config += "dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 20000 }\n"
    (tmp_path / "mlp_batched" / "config.pbtxt").write_text(config)
    s = Server([EXAMPLES, tmp_path], "--execution-threads", "1", "--log-level", "debug").start()
    rng = np.random.default_rng(7)
    batches = [rng.standard_normal((int(rng.integers(1, 4)), 16)).astype(np.float32)
               for _ in range(24)]
    try:
        http = httpclient.InferenceServerClient(s.url, concurrency=24)
        grpc = grpcclient.InferenceServerClient(s.grpc_url)
        try:
            def inputs(module, x):
                i = module.InferInput("input", list(x.shape), "FP32")
                i.set_data_from_numpy(x)
                return [i]

            want = [http.infer("mlp_classifier", inputs(httpclient, x)).as_numpy("probabilities")
                    for x in batches]
            pending = [http.async_infer("mlp_batched", inputs(httpclient, x)) for x in batches]
            got = [p.get_result().as_numpy("probabilities") for p in pending]
            for x, w, g in zip(batches, want, got):
                assert g.shape == (x.shape[0], 10)
                np.testing.assert_array_equal(g, w)
            results = []
            done = threading.Event()

            def callback(result, error):
                results.append((result, error))
                if len(results) == len(batches):
                    done.set()

            for i, x in enumerate(batches):
                grpc.async_infer("mlp_batched", inputs(grpcclient, x), callback, request_id=str(i))
            done.wait(600)
            for result, error in results:
                assert error is None, error
                i = int(result.get_response().id)
                np.testing.assert_array_equal(result.as_numpy("probabilities"), want[i])
        finally:
            http.close()
            grpc.close()
        # The requests did share executions.
        assert "model 'mlp_batched': one execution of" in s.text(), s.text()[-3000:]
    finally:
        assert s.stop() == 0, s.text()[-5000:]
