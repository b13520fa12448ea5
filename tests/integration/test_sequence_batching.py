"""Sequence batching (issue 23): Triton's sequence_batching for stateful
models, through tritonclient HTTP and gRPC. An ONNX accumulator whose answer
is its sequence's inputs read as base-2 digits (any misordering or lost state
changes it) keeps its state as Triton's implicit state; sequences interleaved
from several clients give each its own answer under both strategies, with
integer and string ids; control inputs reach the model; idle sequences
expire; errors are clear; a worker process's death ends its sequences."""
import concurrent.futures
import os
import signal
import sys
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import ROOT, Server
from test_python_isolation import workers_of

sys.path.insert(0, str(ROOT / "scripts"))
from pipeline_models import accumulated, write_accumulate, write_controls  # noqa: E402

MODELS = {
    "acc_oldest": "oldest { max_candidate_sequences: 64 }",
    # 2 instances x 4 slots: of 12 sequences at once, 4 wait for a slot.
    "acc_direct": "direct { }",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("sequences")
    write_accumulate(repo, "acc_oldest", MODELS["acc_oldest"])
    write_accumulate(repo, "acc_direct", MODELS["acc_direct"], max_batch_size=4)
    write_accumulate(repo, "acc_idle", MODELS["acc_oldest"], idle_us=100_000)
    write_accumulate(repo, "acc_worker", MODELS["acc_oldest"], instances=1,
                     extra="mmserve { isolation: PROCESS }\n")
    write_controls(repo)
    s = Server([repo], "--worker-restart-backoff-ms", "50",
               "--worker-max-restart-backoff-ms", "200").start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def step(client, module, model, sequence_id, value, start=False, end=False):
    i = module.InferInput("INPUT", [1, 1], "INT32")
    i.set_data_from_numpy(np.array([[value]], dtype=np.int32))
    r = client.infer(model, [i], sequence_id=sequence_id, sequence_start=start,
                     sequence_end=end)
    return int(r.as_numpy("OUTPUT")[0][0])


def run_sequence(url_http, url_grpc, model, sequence_id, values, use_grpc):
    module = grpcclient if use_grpc else httpclient
    client = module.InferenceServerClient(url_grpc if use_grpc else url_http)
    got = []
    for k, v in enumerate(values):
        got.append(step(client, module, model, sequence_id, v, start=k == 0,
                        end=k == len(values) - 1))
    client.close()
    return got


@pytest.mark.parametrize("model", sorted(MODELS))
def test_interleaved_sequences_from_many_clients_each_get_their_own_answer(server, model):
    sequences = {}
    for n in range(12):
        sid = 1000 + n if n % 3 else f"text-id-{n}"  # integer and string ids
        sequences[sid] = [(n * 7 + k * 3) % 10 for k in range(8)]
    with concurrent.futures.ThreadPoolExecutor(len(sequences)) as pool:
        futures = {sid: pool.submit(run_sequence, server.url, server.grpc_url, model, sid, values,
                                    k % 2 == 1)
                   for k, (sid, values) in enumerate(sequences.items())}
        for sid, f in futures.items():
            assert f.result() == accumulated(sequences[sid]), sid
    # Every sequence ended: none is left under way.
    stats = httpclient.InferenceServerClient(server.url).get_inference_statistics(model)
    s = stats["model_stats"][0]
    assert s["inference_count"] >= 96
    # Batches formed across sequences (12 clients at once on 2 instances).
    assert s["execution_count"] <= s["inference_count"]


def test_control_inputs_reach_the_model(server):
    c = grpcclient.InferenceServerClient(server.grpc_url)

    def call(value, **flags):
        i = grpcclient.InferInput("INPUT", [1, 1], "INT32")
        i.set_data_from_numpy(np.array([[value]], dtype=np.int32))
        r = c.infer("controls", [i], sequence_id=77, **flags)
        return [r.as_numpy(n)[0][0].item() for n in
                ("OUTPUT", "OUT_START", "OUT_END", "OUT_READY", "OUT_CORRID")]

    assert call(1, sequence_start=True) == [1, 1, 5, 1.0, 77]
    assert call(2) == [2, 0, 5, 1.0, 77]
    assert call(3, sequence_end=True) == [3, 0, 7, 1.0, 77]
    # The control inputs are not the client's: sending one is refused.
    r = requests.post(f"{server.base}/v2/models/controls/infer", json={
        "parameters": {"sequence_id": 78, "sequence_start": True},
        "inputs": [{"name": "INPUT", "datatype": "INT32", "shape": [1, 1], "data": [1]},
                   {"name": "START", "datatype": "INT32", "shape": [1, 1], "data": [1]}]},
        timeout=10)
    assert r.status_code == 400 and "START" in r.json()["error"]


def test_errors_name_the_sequence_and_what_was_expected(server):
    url = f"{server.base}/v2/models/acc_oldest/infer"

    def post(parameters):
        return requests.post(url, json={"parameters": parameters, "inputs": [
            {"name": "INPUT", "datatype": "INT32", "shape": [1, 1], "data": [1]}]}, timeout=10)

    r = post({})
    assert r.status_code == 400 and "needs the parameter sequence_id" in r.json()["error"]
    r = post({"sequence_id": 555})
    assert r.status_code == 400
    assert "sequence 555 is not under way" in r.json()["error"]
    assert "begins with a request whose sequence_start is true" in r.json()["error"]
    assert post({"sequence_id": 555, "sequence_start": True}).status_code == 200
    r = post({"sequence_id": 555, "sequence_start": True})
    assert r.status_code == 400 and "sequence 555 is already under way" in r.json()["error"]
    assert post({"sequence_id": 555, "sequence_end": True}).status_code == 200
    r = post({"sequence_id": 555})
    assert r.status_code == 400 and "it ended: its request with sequence_end came" in \
        r.json()["error"]
    # A new sequence of the same id starts afresh.
    assert post({"sequence_id": 555, "sequence_start": True}).json()["outputs"][0]["data"] == [1]
    post({"sequence_id": 555, "sequence_end": True})


def test_an_idle_sequence_expires(server):
    c = httpclient.InferenceServerClient(server.url)
    assert step(c, httpclient, "acc_idle", 9, 1, start=True) == 1
    assert step(c, httpclient, "acc_idle", 9, 1) == 3
    time.sleep(0.5)  # five times max_sequence_idle_microseconds
    with pytest.raises(InferenceServerException) as e:
        step(c, httpclient, "acc_idle", 9, 1)
    assert "sequence 9 is not under way: it expired" in str(e.value)
    assert "max_sequence_idle_microseconds (100000)" in str(e.value)


def test_a_workers_death_ends_its_sequences_with_a_clear_error(server):
    c = httpclient.InferenceServerClient(server.url)
    assert step(c, httpclient, "acc_worker", 31, 1, start=True) == 1
    assert step(c, httpclient, "acc_worker", 31, 0) == 2
    pids = workers_of(server, "acc_worker")
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    # While the worker restarts the model is unavailable (503); then the
    # sequence is gone, saying why.
    deadline = time.monotonic() + 30
    while True:
        with pytest.raises(InferenceServerException) as e:
            step(c, httpclient, "acc_worker", 31, 1)
        if "not under way" in str(e.value):
            break
        assert "[503]" in str(e.value), str(e.value)
        assert time.monotonic() < deadline, str(e.value)
        time.sleep(0.05)
    # (Ended when the server learnt of the death, or when a request of the
    # worker's failed: whichever came first.)
    assert "sequence 31 is not under way: it ended: " in str(e.value)
    assert "failed" in str(e.value) and "killed by signal 9" in str(e.value)
    # Once the worker is back, new sequences work.
    while True:
        try:
            assert step(c, httpclient, "acc_worker", 32, 1, start=True) == 1
            break
        except InferenceServerException:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert step(c, httpclient, "acc_worker", 32, 1, end=True) == 3
