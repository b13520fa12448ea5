"""Decoupled Python models (model_transaction_policy { decoupled: true }),
written as Triton's Python backend documentation writes them: each request's
response sender (request.get_response_sender()) sends zero or more responses
then TRITONSERVER_RESPONSE_COMPLETE_FINAL, during execute or later from a
Python thread of the model's own; execute returns None. Through a real server
(the models run in worker processes and answer over the worker's call
channel): tritonclient gRPC streams (many responses, none, an error response,
a thread answering after execute returned), /generate and /generate_stream,
Triton's errors (execute returning responses, a send after the final), a
worker that crashes mid-stream, two instances, and the token_stream example."""
import json
import queue
import shutil

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, Server, wait_for_log
from python_models import write_model

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }} ]
output [
  {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "IDX" data_type: TYPE_INT32 dims: [ 1 ] }}
]
instance_group [ {{ count: {count} kind: KIND_CPU }} ]
"""

# IN's values one response each (OUT, IDX), then the final flag alone; a
# value of -1 is answered with an error response, and the stream goes on.
STREAM = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            values = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            for i, v in enumerate(values.reshape(-1)):
                if v == -1:
                    sender.send(pb_utils.InferenceResponse(
                        error=pb_utils.TritonError("value -1 at %d is refused" % i)))
                    continue
                sender.send(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("OUT", np.array([v], dtype=np.int32)),
                    pb_utils.Tensor("IDX", np.array([i], dtype=np.int32))]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""

# Answers from a thread of its own that starts sending once execute has
# returned (Triton's decoupled examples answer this way); a send after the
# final raises, and the model logs what it raised.
THREADED = """
import threading

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.threads = []

    def execute(self, requests):
        returned = threading.Event()
        for request in requests:
            sender = request.get_response_sender()
            values = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy().copy()
            t = threading.Thread(target=self.answer, args=(sender, values, returned))
            t.start()
            self.threads.append(t)
        returned.set()
        return None

    def answer(self, sender, values, returned):
        returned.wait()
        for i, v in enumerate(values.reshape(-1)):
            sender.send(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUT", np.array([v * 10], dtype=np.int32)),
                pb_utils.Tensor("IDX", np.array([i], dtype=np.int32))]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        try:
            sender.send(pb_utils.InferenceResponse(output_tensors=[]))
        except pb_utils.TritonModelException as e:
            print("send after the final raised: %s" % e, flush=True)

    def finalize(self):
        for t in self.threads:
            t.join()
"""

# Returns responses from execute, which a decoupled model must not.
RETURNS = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("OUT", np.array([1], dtype=np.int32)),
            pb_utils.Tensor("IDX", np.array([0], dtype=np.int32))]) for _ in requests]
"""

# Sends IN[0] responses, then its worker dies (SIGKILL) mid-stream.
CRASH = """
import os
import signal

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        sender = requests[0].get_response_sender()
        n = int(pb_utils.get_input_tensor_by_name(requests[0], "IN").as_numpy()[0])
        for i in range(n):
            sender.send(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUT", np.array([i], dtype=np.int32)),
                pb_utils.Tensor("IDX", np.array([i], dtype=np.int32))]))
        os.kill(os.getpid(), signal.SIGKILL)
"""

# Two instances, each in its own worker: a request waits (at most 60 s) until
# requests are inside execute in two different processes at once, then
# answers how many it saw (OUT) and its instance's pid (IDX).
TWO_INSTANCES = """
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.dir = os.path.join(args["model_repository"], "rendezvous")
        os.makedirs(self.dir, exist_ok=True)

    def execute(self, requests):
        open(os.path.join(self.dir, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(self.dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen = len(os.listdir(self.dir))
        for request in requests:
            sender = request.get_response_sender()
            sender.send(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUT", np.array([seen], dtype=np.int32)),
                pb_utils.Tensor("IDX", np.array([os.getpid()], dtype=np.int32))]),
                flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""


# Sends one response, then waits (at most 60 s) until its client goes away,
# logs what is_cancelled() said, and closes the request.
CANCEL = """
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            threading.Thread(target=self.watch, args=(request, sender)).start()
        return None

    def watch(self, request, sender):
        sender.send(pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("OUT", np.array([1], dtype=np.int32)),
            pb_utils.Tensor("IDX", np.array([0], dtype=np.int32))]))
        deadline = time.monotonic() + 60
        while not sender.is_cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        print("saw the cancellation: %s %s" % (sender.is_cancelled(), request.is_cancelled()),
              flush=True)
        sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(
            "cancelled", pb_utils.TritonError.CANCELLED)),
            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("python_decoupled_repo")
    for name, source, count in (("py_stream", STREAM, 1), ("py_thread", THREADED, 1),
                                ("py_returns", RETURNS, 1), ("py_crash", CRASH, 1),
                                ("py_two", TWO_INSTANCES, 2), ("py_cancel", CANCEL, 1)):
        write_model(repo, name, source, CONFIG.format(name=name, count=count))
    shutil.copytree(EXAMPLES / "token_stream", repo / "token_stream")
    s = Server([repo], "--worker-restart-backoff-ms", "10").start()
    yield s
    code = s.stop()
    assert code == 0, f"mmserve exited with {code}:\n{s.text()[-5000:]}"


class Stream:
    """One gRPC stream; results (or errors) arrive in `results`, in order."""

    def __init__(self, server):
        self.client = grpcclient.InferenceServerClient(server.grpc_url)
        self.results = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.results.put((result, error)))

    def send(self, model, values, request_id="", final_flag=False):
        inputs = [grpcclient.InferInput("IN", [len(values)], "INT32")]
        inputs[0].set_data_from_numpy(np.array(values, dtype=np.int32))
        self.client.async_stream_infer(model, inputs, request_id=request_id,
                                       enable_empty_final_response=final_flag)

    def next(self):
        return self.results.get(timeout=60)

    def take(self, n):
        return [self.next() for _ in range(n)]

    def until_final(self):
        out = []
        while True:
            result, error = self.next()
            out.append((result, error))
            if result is not None and is_final(result):
                return out

    def close(self):
        self.client.stop_stream()
        self.client.close()


def is_final(result):
    params = result.get_response().parameters
    return "triton_final_response" in params and params["triton_final_response"].bool_param


def values(results, name="OUT"):
    """`name`'s value in each result that has outputs (the final one may)."""
    return [int(r.as_numpy(name)[0]) for r, e in results
            if r is not None and r.get_response().outputs]


def test_many_responses_in_order(server):
    s = Stream(server)
    try:
        s.send("py_stream", [5, 6, 7, 8], request_id="r1", final_flag=True)
        results = s.until_final()
        assert all(e is None for _, e in results), results
        assert values(results) == [5, 6, 7, 8]
        assert values(results, "IDX") == [0, 1, 2, 3]
        assert all(r.get_response().id == "r1" for r, _ in results)
        # The final flag came alone: an empty final response, no outputs.
        assert is_final(results[-1][0]) and not results[-1][0].get_response().outputs
        assert len(results) == 5
    finally:
        s.close()


def test_zero_responses_then_the_final_flag_alone(server):
    s = Stream(server)
    try:
        s.send("py_stream", [], request_id="empty", final_flag=True)
        (result, error), = s.until_final()
        assert error is None and is_final(result)
        assert result.get_response().id == "empty" and not result.get_response().outputs
    finally:
        s.close()


def test_an_error_response_mid_stream_and_the_stream_goes_on(server):
    s = Stream(server)
    try:
        s.send("py_stream", [1, -1, 3], final_flag=True)
        results = s.until_final()
        assert results[0][0].as_numpy("OUT")[0] == 1
        assert results[1][0] is None and isinstance(results[1][1], InferenceServerException)
        assert "value -1 at 1 is refused" in results[1][1].message()
        assert results[2][0].as_numpy("OUT")[0] == 3
        assert is_final(results[3][0])
    finally:
        s.close()


def test_a_thread_answers_after_execute_returned(server):
    s = Stream(server)
    try:
        s.send("py_thread", [1, 2, 3], request_id="t", final_flag=True)
        results = s.until_final()
        assert values(results) == [10, 20, 30]
        # Its send after the final raised Triton's error, which it logged.
        wait_for_log(server, "send after the final raised: Unable to send response. "
                             "Response sender has been closed.")
        # The instance took more work: execute returned at once.
        s.send("py_thread", [4], final_flag=True)
        assert values(s.until_final()) == [40]
    finally:
        s.close()


def test_streams_on_one_connection_interleave_requests(server):
    s = Stream(server)
    try:
        for i in range(5):
            s.send("py_stream", [i, i], request_id=f"q{i}", final_flag=True)
        by_id = {}
        finals = 0
        while finals < 5:
            result, error = s.next()
            assert error is None, error
            rid = result.get_response().id
            if is_final(result):
                finals += 1
            else:
                by_id.setdefault(rid, []).append(int(result.as_numpy("OUT")[0]))
        assert by_id == {f"q{i}": [i, i] for i in range(5)}
    finally:
        s.close()


def test_is_cancelled_sees_the_client_go_away(server):
    s = Stream(server)
    s.send("py_cancel", [0])
    result, error = s.next()
    assert error is None and int(result.as_numpy("OUT")[0]) == 1
    s.client.stop_stream(cancel_requests=True)
    s.client.close()
    wait_for_log(server, "saw the cancellation: True True")


def test_execute_returning_responses_is_triton_error(server):
    s = Stream(server)
    try:
        s.send("py_returns", [1])
        result, error = s.next()
        assert result is None
        assert ("Python model 'py_returns' is using the decoupled mode and the execute "
                "function must return None.") in error.message()
    finally:
        s.close()


def test_plain_infer_refuses_a_decoupled_python_model(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    inputs = [grpcclient.InferInput("IN", [1], "INT32")]
    inputs[0].set_data_from_numpy(np.array([1], dtype=np.int32))
    with pytest.raises(InferenceServerException, match="decoupled"):
        client.infer("py_stream", inputs)
    client.close()


def sse_events(response):
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


def test_generate_and_generate_stream(server):
    r = requests.post(server.base + "/v2/models/py_stream/generate",
                      data=json.dumps({"IN": [42]}), timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["OUT"] == 42 and r.json()["IDX"] == 0
    r = requests.post(server.base + "/v2/models/py_stream/generate_stream",
                      data=json.dumps({"IN": [5, 6, 7]}), stream=True, timeout=60)
    assert r.status_code == 200
    assert [(e["OUT"], e["IDX"]) for e in sse_events(r)] == [(5, 0), (6, 1), (7, 2)]
    # The example: one event per token.
    r = requests.post(server.base + "/v2/models/token_stream/generate_stream",
                      data=json.dumps({"TEXT": "the quick brown fox"}), stream=True, timeout=60)
    events = sse_events(r)
    assert [e["TOKEN"] for e in events] == ["the", "quick", "brown", "fox"]
    assert [e["INDEX"] for e in events] == [0, 1, 2, 3]


def test_token_stream_example_over_grpc(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    text = grpcclient.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"hello streaming world"], dtype=np.object_))
    client.async_stream_infer("token_stream", [text], enable_empty_final_response=True)
    tokens = []
    while True:
        result, error = results.get(timeout=60)
        assert error is None, error
        if is_final(result):
            break
        tokens.append(result.as_numpy("TOKEN")[0])
    assert tokens == [b"hello", b"streaming", b"world"]
    client.stop_stream()
    client.close()


def test_a_worker_that_crashes_mid_stream_ends_the_stream_naming_it(server):
    s = Stream(server)
    try:
        s.send("py_crash", [2], final_flag=True)
        results = s.take(3)
        assert values(results[:2]) == [0, 1]
        result, error = results[2]
        assert result is None
        assert "model 'py_crash' version 1 worker killed by signal 9" in error.message(), \
            error.message()
        # Other models are untouched.
        s.send("py_stream", [3], final_flag=True)
        assert values(s.until_final()) == [3]
    finally:
        s.close()
    # And the crashed model's worker comes back.
    wait_for_log(server, "model 'py_crash' version 1: worker 0 restarted")


FINALIZE = """
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.marker = os.path.join(args["model_repository"], "finalized_" + args["model_instance_name"])

    def execute(self, requests):
        for request in requests:
            request.get_response_sender().send(
                flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def finalize(self):
        open(self.marker, "w").close()
"""


def test_finalize_runs_in_each_instance_when_the_model_unloads(tmp_path):
    write_model(tmp_path, "fin", FINALIZE, CONFIG.format(name="fin", count=2))
    s = Server([tmp_path], "--model-control-mode", "explicit", "--load-model", "fin").start()
    try:
        assert not list((tmp_path / "fin").glob("finalized_*"))
        r = requests.post(s.base + "/v2/repository/models/fin/unload", timeout=60)
        assert r.status_code == 200, r.text
        # Unloaded once its workers have finalized (and been stopped); the
        # instances are Triton's <model>_<group>_<index>.
        assert sorted(p.name for p in (tmp_path / "fin").glob("finalized_*")) == \
            ["finalized_fin_0_0", "finalized_fin_0_1"]
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_two_instances_run_in_two_workers_at_once(server):
    a, b = Stream(server), Stream(server)
    try:
        a.send("py_two", [0], final_flag=True)
        b.send("py_two", [0], final_flag=True)
        ra, rb = a.until_final(), b.until_final()
        assert values(ra) == [2] and values(rb) == [2]
        assert values(ra, "IDX") != values(rb, "IDX")  # two processes
    finally:
        a.close()
        b.close()
