"""A dynamic batch reaching a model as the LIST of its requests (Triton's
Python backend: execute(requests) receives the queued requests unmerged),
in the server's process and in a worker process (mmserve.isolation PROCESS).

The identity test backend in list mode (config parameter batch_as_list) sets
LoadedModel::batch_as_list and answers each request with its input and a
LIST_INFO output: JSON saying how many requests its list held, its place, its
id and its parameters. Batches form deterministically: preferred_batch_size
N with a queue delay far longer than any test (60 s), and exactly N
concurrent requests, so the batch goes when (and only when) all N are queued.
"""
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import Server

N = 3

CONFIG = """name: "{name}"
backend: "mmserve_test_identity"
max_batch_size: 8
input [ {{ name: "X" data_type: TYPE_FP32 dims: [ 2 ] }} ]
dynamic_batching {{ preferred_batch_size: [ {n} ] max_queue_delay_microseconds: 60000000 }}
instance_group [ {{ count: 1 }} ]
parameters {{ key: "batch_as_list" value {{ string_value: "{as_list}" }} }}
{extra}
"""


def repo(root: Path) -> Path:
    models = {
        "in_process": ("true", ""),
        "in_worker": ("true", "mmserve { isolation: PROCESS }"),
        "merged": ("false", ""),
    }
    for name, (as_list, extra) in models.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(
            CONFIG.format(name=name, n=N, as_list=as_list, extra=extra))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server([repo(tmp_path_factory.mktemp("lists"))], "--enable-test-backends").start()
    yield s
    s.stop()


def send_together(server, model, requests_):
    """Sends every (id, x, parameters, outputs) at once, each on its own
    connection; returns id -> result (InferResult or the exception)."""
    results = {}
    lock = threading.Lock()

    def one(request_id, x, parameters, outputs):
        client = httpclient.InferenceServerClient(server.url, network_timeout=120)
        try:
            inp = httpclient.InferInput("X", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            outs = [httpclient.InferRequestedOutput(o) for o in outputs] if outputs else None
            r = client.infer(model, [inp], outputs=outs, request_id=request_id,
                             parameters=parameters or None)
        except InferenceServerException as e:
            r = e
        finally:
            client.close()
        with lock:
            results[request_id] = r

    threads = [threading.Thread(target=one, args=a) for a in requests_]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert len(results) == len(requests_), "a request got no answer"
    return results


def info(result):
    [element] = result.as_numpy("LIST_INFO").reshape(-1)
    return json.loads(element)


@pytest.mark.parametrize("model", ["in_process", "in_worker"])
def test_a_batch_arrives_as_a_list_with_ids_and_parameters(server, model):
    requests_ = []
    for i in range(N):
        x = np.array([[i, 10 * i]], dtype=np.float32)
        params = {"note": f"request {i}", "n": i, "ratio": i + 0.5, "flag": i % 2 == 0}
        requests_.append((f"r{i}", x, params, None))
    results = send_together(server, model, requests_)
    seen_index = set()
    for i in range(N):
        r = results[f"r{i}"]
        assert not isinstance(r, Exception), r
        # Its own rows back, not a neighbour's.
        np.testing.assert_array_equal(r.as_numpy("X_OUT"), np.array([[i, 10 * i]], np.float32))
        got = info(r)
        assert got["list"] == N, got  # one list of all N requests
        assert got["id"] == f"r{i}"
        p = got["parameters"]
        assert p["note"] == f"request {i}"
        assert p["n"] == i and isinstance(p["n"], int)
        assert p["ratio"] == i + 0.5
        assert p["flag"] is (i % 2 == 0)
        seen_index.add(got["index"])
        assert r.get_response()["id"] == f"r{i}"
    assert seen_index == set(range(N))
    stats = httpclient.InferenceServerClient(server.url).get_inference_statistics(model)
    s = stats["model_stats"][0]
    # One execution of N rows, as a merged batch counts it.
    assert s["execution_count"] == 1, s
    assert s["inference_count"] == N, s


@pytest.mark.parametrize("model", ["in_process", "in_worker"])
def test_a_requests_own_error_fails_only_that_request(server, model):
    requests_ = [(f"e{i}", np.full((1, 2), i, np.float32), {"fail": i == 1}, None)
                 for i in range(N)]
    results = send_together(server, model, requests_)
    failed = results["e1"]
    assert isinstance(failed, InferenceServerException), failed
    assert "identity: request 'e1' asked to fail" in str(failed)
    for i in (0, 2):
        r = results[f"e{i}"]
        assert not isinstance(r, Exception), r
        assert info(r)["list"] == N
        np.testing.assert_array_equal(r.as_numpy("X_OUT"), np.full((1, 2), i, np.float32))


def test_requested_outputs_are_per_request_in_a_worker(server):
    requests_ = [("o0", np.ones((1, 2), np.float32), None, ["X_OUT"]),
                 ("o1", np.ones((1, 2), np.float32), None, ["LIST_INFO"]),
                 ("o2", np.ones((1, 2), np.float32), None, None)]
    results = send_together(server, "in_worker", requests_)
    assert results["o0"].as_numpy("LIST_INFO") is None
    assert results["o0"].as_numpy("X_OUT") is not None
    assert results["o1"].as_numpy("X_OUT") is None
    assert info(results["o1"])["list"] == N
    assert info(results["o2"])["list"] == N


def test_without_the_flag_a_batch_is_merged(server):
    requests_ = [(f"m{i}", np.full((1, 2), i, np.float32), None, None) for i in range(N)]
    results = send_together(server, "merged", requests_)
    for i in range(N):
        r = results[f"m{i}"]
        assert not isinstance(r, Exception), r
        np.testing.assert_array_equal(r.as_numpy("X_OUT"), np.full((1, 2), i, np.float32))
        assert r.as_numpy("LIST_INFO") is None  # no list mode, no such output
