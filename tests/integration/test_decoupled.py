"""Decoupled models (Triton's model_transaction_policy { decoupled: true })
through a real server: the repeat test backend (tests/backends/repeat) answers
IN's values one response each, from its own thread, then the final flag
alone. Over gRPC ModelStreamInfer (tritonclient's start_stream /
async_stream_infer): many responses in order, none, the empty final response
flag, an error response mid-stream, request ids echoed, a non-decoupled model
through the stream, a client that goes away mid-stream, concurrent streams;
the one-response endpoints refuse a decoupled model."""
import queue
import threading

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from decoupled_models import serve_repeat_and_copy

COPY_CONFIG = """
backend: "mmserve_test_identity"
input [ { name: "IN" data_type: TYPE_INT32 dims: [ -1 ] } ]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = serve_repeat_and_copy(tmp_path_factory.mktemp("decoupled_repo"), COPY_CONFIG)
    yield s
    code = s.stop()
    assert code == 0, f"mmserve exited with {code}:\n{s.text()[-5000:]}"


class Stream:
    """One gRPC stream; results (or errors) arrive in `results`, in order."""

    def __init__(self, server):
        self.client = grpcclient.InferenceServerClient(server.grpc_url)
        self.results = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.results.put((result, error)))

    def send(self, model, values, request_id="", fail_at=None, final_flag=False, hold=False):
        inputs = [grpcclient.InferInput("IN", [len(values)], "INT32")]
        inputs[0].set_data_from_numpy(np.array(values, dtype=np.int32))
        if fail_at is not None:
            inputs.append(grpcclient.InferInput("FAIL_AT", [1], "INT32"))
            inputs[-1].set_data_from_numpy(np.array([fail_at], dtype=np.int32))
        if hold:
            inputs.append(grpcclient.InferInput("HOLD", [1], "INT32"))
            inputs[-1].set_data_from_numpy(np.array([1], dtype=np.int32))
        self.client.async_stream_infer(model, inputs, request_id=request_id,
                                       enable_empty_final_response=final_flag)

    def next(self):
        return self.results.get(timeout=60)

    def until_final(self):
        """Every result up to and including one marked triton_final_response."""
        out = []
        while True:
            result, error = self.next()
            out.append((result, error))
            if result is not None and is_final(result):
                return out

    def close(self, cancel=False):
        self.client.stop_stream(cancel_requests=cancel)
        self.client.close()


def is_final(result):
    params = result.get_response().parameters
    return "triton_final_response" in params and params["triton_final_response"].bool_param


def has_final_param(result):
    return "triton_final_response" in result.get_response().parameters


def test_many_responses_in_order_with_ids(server):
    s = Stream(server)
    try:
        s.send("repeat", [5, 6, 7], request_id="r1", final_flag=True)
        got = s.until_final()
        assert [e for _, e in got] == [None] * 4
        values = [(int(r.as_numpy("OUT")[0]), int(r.as_numpy("IDX")[0])) for r, _ in got[:3]]
        assert values == [(5, 0), (6, 1), (7, 2)]
        assert [r.get_response().id for r, _ in got] == ["r1"] * 4
        assert [is_final(r) for r, _ in got] == [False, False, False, True]
        # The final flag came alone: an empty response.
        assert len(got[3][0].get_response().outputs) == 0
    finally:
        s.close()


def test_without_the_flag_the_bare_final_writes_nothing(server):
    s = Stream(server)
    try:
        # One instance answers in order: "a"'s responses come before "b"'s final.
        s.send("repeat", [1, 2], request_id="a")
        s.send("repeat", [], request_id="b", final_flag=True)
        got = s.until_final()
        assert [r.get_response().id for r, _ in got] == ["a", "a", "b"]
        assert not has_final_param(got[0][0]) and not has_final_param(got[1][0])
        assert [int(r.as_numpy("OUT")[0]) for r, _ in got[:2]] == [1, 2]
    finally:
        s.close()


def test_zero_responses_sends_only_the_final_flag(server):
    s = Stream(server)
    try:
        s.send("repeat", [], request_id="none", final_flag=True)
        result, error = s.next()
        assert error is None and is_final(result)
        assert result.get_response().id == "none"
        assert len(result.get_response().outputs) == 0
    finally:
        s.close()


def test_error_response_mid_stream_and_the_stream_goes_on(server):
    s = Stream(server)
    try:
        s.send("repeat", [10, 11, 12], request_id="e", fail_at=1, final_flag=True)
        got = s.until_final()
        assert len(got) == 4
        assert got[0][1] is None and int(got[0][0].as_numpy("OUT")[0]) == 10
        assert got[1][0] is None and isinstance(got[1][1], InferenceServerException)
        assert "response 1 fails" in str(got[1][1])
        assert got[2][1] is None and int(got[2][0].as_numpy("OUT")[0]) == 12
        assert is_final(got[3][0])
        # The same stream serves the next request.
        s.send("repeat", [3], request_id="after", final_flag=True)
        got = s.until_final()
        assert int(got[0][0].as_numpy("OUT")[0]) == 3
    finally:
        s.close()


def test_non_decoupled_model_through_the_stream(server):
    s = Stream(server)
    try:
        s.send("copy", [4, 5], request_id="c1", final_flag=True)
        result, error = s.next()
        assert error is None and is_final(result)
        assert result.as_numpy("IN_OUT").tolist() == [4, 5]
        assert result.get_response().id == "c1"
        s.send("copy", [6], request_id="c2")
        result, error = s.next()
        assert error is None and not has_final_param(result)
        assert result.as_numpy("IN_OUT").tolist() == [6]
    finally:
        s.close()


def test_one_response_endpoints_refuse_a_decoupled_model(server):
    body = {"inputs": [{"name": "IN", "shape": [1], "datatype": "INT32", "data": [1]}]}
    r = requests.post(server.base + "/v2/models/repeat/infer", json=body, timeout=30)
    assert r.status_code == 501  # Triton: UNSUPPORTED
    error = r.json()["error"]
    assert "doesn't support models with decoupled transaction policy" in error
    assert "'repeat'" in error and "decoupled" in error and "ModelStreamInfer" in error
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        inp = grpcclient.InferInput("IN", [1], "INT32")
        inp.set_data_from_numpy(np.array([1], dtype=np.int32))
        with pytest.raises(InferenceServerException) as e:
            client.infer("repeat", [inp])
        assert "decoupled" in str(e.value) and "UNIMPLEMENTED" in str(e.value.status())
    finally:
        client.close()


def test_client_gone_mid_stream_server_keeps_serving(server):
    s = Stream(server)
    s.send("repeat", list(range(20000)), request_id="long")
    result, error = s.next()  # at least one response flowed
    assert error is None
    s.close(cancel=True)
    # The model completes (or is cancelled) and serves the next stream.
    t = Stream(server)
    try:
        t.send("repeat", [8, 9], request_id="next", final_flag=True)
        got = t.until_final()
        assert [int(r.as_numpy("OUT")[0]) for r, _ in got[:2]] == [8, 9]
    finally:
        t.close()


def test_cancelling_the_stream_reaches_the_model(server):
    # HOLD keeps the model's only instance thread on the request until the
    # client goes away: the next stream is answered only once it has.
    s = Stream(server)
    s.send("repeat", [1], request_id="held", hold=True)
    result, error = s.next()
    assert error is None and int(result.as_numpy("OUT")[0]) == 1
    s.close(cancel=True)
    t = Stream(server)
    try:
        t.send("repeat", [2], request_id="after", final_flag=True)
        got = t.until_final()
        assert int(got[0][0].as_numpy("OUT")[0]) == 2
    finally:
        t.close()


def test_concurrent_streams(server):
    failures = []

    def run(k):
        try:
            s = Stream(server)
            try:
                for j in range(5):
                    values = [k * 1000 + j * 10 + i for i in range(j + 1)]
                    s.send("repeat", values, request_id=f"{k}-{j}", final_flag=True)
                    got = s.until_final()
                    assert [int(r.as_numpy("OUT")[0]) for r, _ in got[:-1]] == values
                    assert {r.get_response().id for r, _ in got} == {f"{k}-{j}"}
            finally:
                s.close()
        except Exception as e:  # noqa: BLE001 (reported below)
            failures.append(repr(e))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
