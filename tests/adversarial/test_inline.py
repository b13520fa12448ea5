"""Defect 3 (in-process part): one slow request must not stall the front end.

A model whose average cost is under --inline-execution-max-us may run on the
I/O thread. A request whose run time its values decide (an ONNX Loop whose
trip count is an input) would hold that thread: every health check and every
other request on it waited seconds. Such a model never runs inline now, over
HTTP and gRPC, while a plain model still may."""
import threading
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient

from conftest import EXAMPLES, Server
from hostile import copy_model
from slow_models import write_loop_model


def spin_body(n):
    return {"inputs": [{"name": "N", "shape": [1], "datatype": "INT64", "data": [n]},
                       {"name": "X", "shape": [4], "datatype": "FP32", "data": [0, 0, 0, 0]}]}


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("inline")
    # One model per test, each only ever run with one trip before its slow
    # request, and one to measure the machine on.
    for name in ("spin_http", "spin_grpc", "spin_gauge"):
        write_loop_model(repo, name)
    copy_model("add_sub", repo)
    # One I/O thread per transport, and a bound high enough that the loop
    # model, fast on small trip counts, would qualify for the inline path.
    s = Server([repo], "--http-threads", "1", "--grpc-threads", "1",
               "--execution-slots", "2", "--inline-execution-max-us", "10000").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def trips_for(server, model, seconds):
    """A trip count that keeps the loop busy for about `seconds` here. `model`
    itself only ever runs with one trip first: its average cost is tiny, so
    without the fix its next request would qualify for the inline path."""
    for _ in range(3):
        r = requests.post(server.base + f"/v2/models/{model}/infer", json=spin_body(1))
        assert r.status_code == 200, r.text
    start = time.monotonic()
    r = requests.post(server.base + "/v2/models/spin_gauge/infer", json=spin_body(100_000))
    assert r.status_code == 200, r.text
    per_trip = max(time.monotonic() - start, 1e-3) / 100_000
    return int(seconds / per_trip)


def add_sub_json():
    return {"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                       {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}


def test_the_loop_model_is_never_inline(slow_server):
    assert "model 'spin_http' version 1: never runs inline on an I/O thread: its graph uses " \
        "'Loop'" in slow_server.text()
    assert "model 'add_sub' version 1: never runs inline" not in slow_server.text()


def test_a_slow_request_does_not_stall_http(slow_server):
    trips = trips_for(slow_server, "spin_http", 4)
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=requests.post(
        slow_server.base + "/v2/models/spin_http/infer", json=spin_body(trips), timeout=120)))
    t.start()
    time.sleep(0.5)  # (it is running by now; if not, the checks below merely pass early)
    for _ in range(5):
        start = time.monotonic()
        assert requests.get(slow_server.base + "/v2/health/ready", timeout=3).status_code == 200
        r = requests.post(slow_server.base + "/v2/models/add_sub/infer", json=add_sub_json(),
                          timeout=3)
        assert r.status_code == 200, r.text
        assert time.monotonic() - start < 2.5
    assert t.is_alive(), "the slow request ended before the checks: they proved nothing"
    t.join()
    assert slow["r"].status_code == 200, slow["r"].text
    assert slow["r"].json()["outputs"][0]["data"][0] == float(trips)


def test_a_slow_request_does_not_stall_grpc(slow_server):
    trips = trips_for(slow_server, "spin_grpc", 4)
    client = grpcclient.InferenceServerClient(slow_server.grpc_url)
    other = grpcclient.InferenceServerClient(slow_server.grpc_url)
    try:
        n = grpcclient.InferInput("N", [1], "INT64")
        n.set_data_from_numpy(np.array([trips], np.int64))
        x = grpcclient.InferInput("X", [4], "FP32")
        x.set_data_from_numpy(np.zeros(4, np.float32))
        done = threading.Event()
        result = {}

        def callback(result_=None, error=None, **kwargs):
            result.update(r=kwargs.get("result", result_), error=error)
            done.set()

        client.async_infer("spin_grpc", [n, x], callback)
        time.sleep(0.5)
        a = grpcclient.InferInput("INPUT0", [4], "FP32")
        a.set_data_from_numpy(np.arange(4, dtype=np.float32))
        b = grpcclient.InferInput("INPUT1", [4], "FP32")
        b.set_data_from_numpy(np.ones(4, np.float32))
        for _ in range(5):
            assert other.is_server_ready(client_timeout=3)
            out = other.infer("add_sub", [a, b], client_timeout=3)
            np.testing.assert_array_equal(out.as_numpy("OUTPUT0"), np.arange(4) + 1)
        assert not done.is_set(), "the slow request ended before the checks: they proved nothing"
        assert done.wait(120)
        assert result["error"] is None, result["error"]
        assert result["r"].as_numpy("Y")[0] == float(trips)
    finally:
        client.close()
        other.close()


def test_a_long_run_does_not_hold_the_only_execution_slot(tmp_path):
    """One execution slot: a request whose Loop runs for seconds would hold it,
    and every other model would wait for it. A run whose length its inputs
    decide lends its slot once it drags on while other work waits."""
    repo = tmp_path / "repo"
    repo.mkdir()
    write_loop_model(repo, "spin_slot")
    write_loop_model(repo, "spin_gauge")
    copy_model("add_sub", repo)
    s = Server([repo], "--execution-slots", "1", "--inline-execution-max-us", "0").start()
    try:
        trips = trips_for(s, "spin_slot", 4)
        slow = {}
        t = threading.Thread(target=lambda: slow.update(r=requests.post(
            s.base + "/v2/models/spin_slot/infer", json=spin_body(trips), timeout=120)))
        t.start()
        time.sleep(0.5)
        for _ in range(3):
            r = requests.post(s.base + "/v2/models/add_sub/infer", json=add_sub_json(), timeout=3)
            assert r.status_code == 200, r.text
        assert t.is_alive(), "the slow request ended before the checks: they proved nothing"
        t.join()
        assert slow["r"].status_code == 200, slow["r"].text
    finally:
        assert s.stop() == 0, s.text()[-3000:]
