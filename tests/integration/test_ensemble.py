"""Ensembles (issue 23): Triton's platform "ensemble" with ensemble_scheduling,
driven through tritonclient HTTP and gRPC. An ONNX pre-processing step, the
example MLP and an ONNX post-processing step answer as the three models called
one after another; two Python branches that each wait for the other prove they
run at once; every load-time check names its step and tensor; a composing
model that crashes mid-pipeline fails the request naming the step; the
statistics count the ensemble and each composing model; a trace has one span
per step; and another tenant's model is no step model."""
import json
import shutil
import sys
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, ROOT, Server
from python_models import write_model
from test_python_isolation import CRASHER, CRASHER_CONFIG
from test_tenancy import KEY_A, KEY_B, bearer, write_tenants

sys.path.insert(0, str(ROOT / "scripts"))
from onnx import TensorProto, helper  # noqa: E402
from pipeline_models import (PIPELINE, onnx_model, write_doubler, write_ensemble,  # noqa: E402
                             write_pipeline_steps, write_pre)

# Two Python models that each write a mark, then wait for the other's: both
# finish only if they run at once. OUT = IN + 1 (meet_a) or IN * 2 (meet_b).
MEET = """
import json
import os
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = config["parameters"]
        self.dir = params["MEET_DIR"]["string_value"]
        self.me = config["name"]
        self.other = params["OTHER"]["string_value"]

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            tag = str(int(x[0]))
            open(os.path.join(self.dir, self.me + "." + tag), "w").close()
            other = os.path.join(self.dir, self.other + "." + tag)
            deadline = time.monotonic() + 30
            while not os.path.exists(other):
                if time.monotonic() > deadline:
                    raise pb_utils.TritonModelException(
                        self.me + " ran alone: " + self.other + " never started")
                time.sleep(0.005)
            y = x + 1 if self.me == "meet_a" else x * 2
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", y)]))
        return responses
"""


def meet_config(name, other, meet_dir):
    return f"""name: "{name}"
backend: "python"
input [{{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }}]
output [{{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }}]
parameters [
  {{ key: "MEET_DIR" value: {{ string_value: "{meet_dir}" }} }},
  {{ key: "OTHER" value: {{ string_value: "{other}" }} }}
]
"""


FORK = """input [{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }]
output [
  { name: "A" data_type: TYPE_FP32 dims: [ -1 ] },
  { name: "B" data_type: TYPE_FP32 dims: [ -1 ] }
]
ensemble_scheduling {
  step [
    { model_name: "meet_a" input_map { key: "IN" value: "IN" } output_map { key: "OUT" value: "A" } },
    { model_name: "meet_b" input_map { key: "IN" value: "IN" } output_map { key: "OUT" value: "B" } }
  ]
}
"""

CRASH_PIPE = """input [{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }]
ensemble_scheduling {
  step [
    { model_name: "doubler" input_map { key: "X" value: "IN" } output_map { key: "Y" value: "half" } },
    { model_name: "crasher" input_map { key: "IN" value: "half" } output_map { key: "OUT" value: "OUT" } }
  ]
}
"""

# Load-time errors: (ensemble, its steps' body, what the error must say).
BAD = {
    "bad_cycle": ("""max_batch_size: 64
input [{ name: "RAW" data_type: TYPE_FP32 dims: [ 16 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 16 ] }]
ensemble_scheduling { step [
  { model_name: "ens_pre" input_map { key: "RAW" value: "loop" } output_map { key: "SCALED" value: "x" } },
  { model_name: "ens_pre" input_map { key: "RAW" value: "x" } output_map { key: "SCALED" value: "loop" } },
  { model_name: "ens_pre" input_map { key: "RAW" value: "RAW" } output_map { key: "SCALED" value: "OUT" } }
] }
""", ["cycle", "step 1 (model 'ens_pre')", "step 2 (model 'ens_pre')", "'x'", "'loop'"]),
    "bad_unproduced": ("""max_batch_size: 64
input [{ name: "RAW" data_type: TYPE_FP32 dims: [ 16 ] }]
output [{ name: "LABEL" data_type: TYPE_INT64 dims: [ 1 ] }]
ensemble_scheduling { step [
  { model_name: "ens_pre" input_map { key: "RAW" value: "RAW" } output_map { key: "SCALED" value: "s" } },
  { model_name: "ens_post" input_map { key: "PROBS" value: "nowhere" } output_map { key: "LABEL" value: "LABEL" } }
] }
""", ["step 2 (model 'ens_post') reads tensor 'nowhere'", "no step writes"]),
    "bad_shape": ("""max_batch_size: 64
input [{ name: "RAW" data_type: TYPE_FP32 dims: [ 16 ] }]
output [{ name: "LABEL" data_type: TYPE_INT64 dims: [ 1 ] }]
ensemble_scheduling { step [
  { model_name: "ens_pre" input_map { key: "RAW" value: "RAW" } output_map { key: "SCALED" value: "s" } },
  { model_name: "ens_post" input_map { key: "PROBS" value: "s" } output_map { key: "LABEL" value: "LABEL" } }
] }
""", ["step 2 (model 'ens_post') reads tensor 's' as input 'PROBS', TYPE_FP32 [-1,10]",
      "step 1 (model 'ens_pre') writes it (output 'SCALED') as TYPE_FP32 [-1,16]"]),
    "bad_dtype": ("""max_batch_size: 64
input [{ name: "RAW" data_type: TYPE_INT32 dims: [ 16 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 16 ] }]
ensemble_scheduling { step [
  { model_name: "ens_pre" input_map { key: "RAW" value: "RAW" } output_map { key: "SCALED" value: "OUT" } }
] }
""", ["step 1 (model 'ens_pre') reads tensor 'RAW' as input 'RAW', TYPE_FP32 [-1,16]",
      "the ensemble's input is TYPE_INT32 [-1,16]"]),
    "bad_missing": ("""input [{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }]
ensemble_scheduling { step [
  { model_name: "no_such_model" input_map { key: "X" value: "IN" } output_map { key: "Y" value: "OUT" } }
] }
""", ["step 1 (model 'no_such_model')", "not in any model repository"]),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("ensembles")
    write_pipeline_steps(repo, EXAMPLES)
    write_doubler(repo)
    write_ensemble(repo, "pipeline", PIPELINE)
    meet_dir = tmp_path_factory.mktemp("meet")
    write_model(repo, "meet_a", MEET, meet_config("meet_a", "meet_b", meet_dir))
    write_model(repo, "meet_b", MEET, meet_config("meet_b", "meet_a", meet_dir))
    write_ensemble(repo, "fork", FORK)
    write_model(repo, "crasher", CRASHER, CRASHER_CONFIG)
    write_ensemble(repo, "crash_pipe", CRASH_PIPE)
    for name, (body, _) in BAD.items():
        write_ensemble(repo, name, body)
    return repo


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    trace_file = tmp_path_factory.mktemp("trace") / "spans.jsonl"
    s = Server([repo], "--model-control-mode", "explicit", "--load-on-demand",
               "--trace-rate", "1", "--trace-file", str(trace_file),
               "--worker-restart-backoff-ms", "50", "--worker-max-restart-backoff-ms", "200")
    s.trace_file = trace_file
    s.start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def direct(server, rows):
    """The three steps, called one after another as a client would."""
    c = httpclient.InferenceServerClient(server.url)

    def call(model, name, data, out):
        i = httpclient.InferInput(name, list(data.shape), "FP32")
        i.set_data_from_numpy(data)
        return c.infer(model, [i]).as_numpy(out)

    scaled = call("ens_pre", "RAW", rows, "SCALED")
    probs = call("mlp_classifier", "input", scaled, "probabilities")
    p = httpclient.InferInput("PROBS", list(probs.shape), "FP32")
    p.set_data_from_numpy(probs)
    return probs, c.infer("ens_post", [p]).as_numpy("LABEL")


def test_a_three_step_pipeline_answers_as_its_steps_called_in_turn(server):
    rows = np.random.default_rng(7).standard_normal((5, 16)).astype(np.float32) * 3
    # The first request loads the ensemble and, first, its composing models.
    c = httpclient.InferenceServerClient(server.url)
    i = httpclient.InferInput("RAW", [5, 16], "FP32")
    i.set_data_from_numpy(rows)
    result = c.infer("pipeline", [i])
    probs, label = direct(server, rows)
    assert result.as_numpy("PROBABILITIES").tobytes() == probs.tobytes()
    assert result.as_numpy("LABEL").tolist() == label.tolist()
    assert result.as_numpy("LABEL").dtype == np.int64
    # The same through gRPC, asking for one output only.
    g = grpcclient.InferenceServerClient(server.grpc_url)
    gi = grpcclient.InferInput("RAW", [5, 16], "FP32")
    gi.set_data_from_numpy(rows)
    got = g.infer("pipeline", [gi], outputs=[grpcclient.InferRequestedOutput("LABEL")])
    assert got.as_numpy("LABEL").tolist() == label.tolist()
    assert got.as_numpy("PROBABILITIES") is None
    # Its metadata is the ensemble's own.
    md = c.get_model_metadata("pipeline")
    assert md["platform"] == "ensemble"
    assert [t["name"] for t in md["outputs"]] == ["PROBABILITIES", "LABEL"]


def test_statistics_count_the_ensemble_and_each_composing_model(server):
    c = httpclient.InferenceServerClient(server.url)
    before = {m: c.get_inference_statistics(m)["model_stats"][0]["inference_count"]
              for m in ("pipeline", "ens_pre", "mlp_classifier", "ens_post")}
    rows = np.ones((3, 16), dtype=np.float32)
    for _ in range(4):
        i = httpclient.InferInput("RAW", [3, 16], "FP32")
        i.set_data_from_numpy(rows)
        c.infer("pipeline", [i])
    stats = c.get_inference_statistics("pipeline")["model_stats"][0]
    assert stats["inference_count"] - before["pipeline"] == 12
    assert stats["inference_stats"]["success"]["count"] >= 4
    # As Triton: the ensemble's compute is its steps' (their sum).
    assert stats["inference_stats"]["compute_infer"]["ns"] > 0
    for m in ("ens_pre", "mlp_classifier", "ens_post"):
        s = c.get_inference_statistics(m)["model_stats"][0]
        assert s["inference_count"] - before[m] == 12, m
    metrics = requests.get(server.metrics_url, timeout=10).text
    assert 'model="pipeline"' in metrics and 'model="ens_post"' in metrics


def test_a_trace_has_one_span_per_step(server):
    c = httpclient.InferenceServerClient(server.url)
    i = httpclient.InferInput("RAW", [1, 16], "FP32")
    i.set_data_from_numpy(np.zeros((1, 16), dtype=np.float32))
    c.infer("pipeline", [i], request_id="traced-ensemble")
    deadline = time.monotonic() + 30
    steps = None
    while time.monotonic() < deadline and steps is None:
        for line in server.trace_file.read_text().splitlines() if server.trace_file.exists() else []:
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    spans = ss["spans"]
                    roots = [s for s in spans if any(
                        a["key"] == "request_id" and a["value"].get("stringValue") ==
                        "traced-ensemble" for a in s["attributes"])]
                    if roots:
                        root = roots[0]
                        steps = [s for s in spans if s.get("parentSpanId") == root["spanId"]
                                 and s["name"] == "ensemble_step"]
        time.sleep(0.2)
    assert steps is not None, "no trace of the request"
    models = sorted(next(a["value"]["stringValue"] for a in s["attributes"] if a["key"] == "model")
                    for s in steps)
    assert models == ["ens_post", "ens_pre", "mlp_classifier"]


def test_independent_branches_run_at_once(server):
    # meet_a and meet_b each wait for the other to have started: run one
    # after the other, the first would give up after 30 s and fail.
    c = httpclient.InferenceServerClient(server.url, network_timeout=120)
    for tag in (3.0, 4.0):
        i = httpclient.InferInput("IN", [2], "FP32")
        i.set_data_from_numpy(np.array([tag, 10], dtype=np.float32))
        r = c.infer("fork", [i])
        assert r.as_numpy("A").tolist() == [tag + 1, 11]
        assert r.as_numpy("B").tolist() == [tag * 2, 20]


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_ensemble_fails_to_load_naming_the_step_and_tensor(server, name):
    c = httpclient.InferenceServerClient(server.url)
    with pytest.raises(InferenceServerException) as e:
        c.load_model(name)
    for part in BAD[name][1]:
        assert part in str(e.value), (part, str(e.value))
    index = {m["name"]: m for m in c.get_model_repository_index()}
    assert index[name]["state"] == "UNAVAILABLE"
    assert BAD[name][1][0] in index[name]["reason"]


def test_a_composing_model_crash_fails_the_request_naming_the_step(server):
    c = httpclient.InferenceServerClient(server.url)
    i = httpclient.InferInput("IN", [2], "FP32")
    i.set_data_from_numpy(np.array([4, 5], dtype=np.float32))
    assert c.infer("crash_pipe", [i]).as_numpy("OUT").tolist() == [8, 10]
    # doubler turns 0.5 into 1: crasher dies on it, mid-pipeline.
    i.set_data_from_numpy(np.array([0.5, 5], dtype=np.float32))
    with pytest.raises(InferenceServerException) as e:
        c.infer("crash_pipe", [i])
    assert "ensemble 'crash_pipe' step 2 (model 'crasher')" in str(e.value)
    # The worker comes back; the pipeline serves again; nothing else was hurt.
    deadline = time.monotonic() + 60
    while True:
        i.set_data_from_numpy(np.array([2, 5], dtype=np.float32))
        try:
            assert c.infer("crash_pipe", [i]).as_numpy("OUT").tolist() == [4, 10]
            break
        except InferenceServerException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    rows = np.ones((1, 16), dtype=np.float32)
    j = httpclient.InferInput("RAW", [1, 16], "FP32")
    j.set_data_from_numpy(rows)
    assert c.infer("pipeline", [j]).as_numpy("LABEL").shape == (1, 1)


def test_a_timeout_covers_the_whole_pipeline(server):
    # The budget counts from when the server began to read the request: 1 µs
    # is spent before the first step can start.
    r = requests.post(f"{server.base}/v2/models/pipeline/infer", json={
        "parameters": {"timeout": 1},
        "inputs": [{"name": "RAW", "datatype": "FP32", "shape": [1, 16], "data": [0.0] * 16}]},
        timeout=30)
    assert r.status_code == 504, r.text
    assert "timeout passed before step 1 (model 'ens_pre')" in r.json()["error"]


def test_another_tenants_model_is_no_step_model(tmp_path):
    repo_a = tmp_path / "a"
    repo_b = tmp_path / "b"
    repo_a.mkdir()
    repo_b.mkdir()
    write_pre(repo_b)  # team-b's
    write_ensemble(repo_a, "steals", """max_batch_size: 64
input [{ name: "RAW" data_type: TYPE_FP32 dims: [ 16 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 16 ] }]
ensemble_scheduling { step [
  { model_name: "ens_pre" input_map { key: "RAW" value: "RAW" } output_map { key: "SCALED" value: "OUT" } }
] }
""")
    tenants = write_tenants(tmp_path / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]},
        {"id": "team-b", "keys": [KEY_B], "repositories": [repo_b]},
    ])
    s = Server([repo_a, repo_b], "--tenants", tenants, "--model-control-mode", "explicit").start()
    try:
        r = requests.post(f"{s.base}/v2/repository/models/steals/load", headers=bearer(KEY_A),
                          timeout=60)
        assert r.status_code != 200
        assert "step 1 (model 'ens_pre')" in r.json()["error"]
        assert "not in any model repository" in r.json()["error"]
        # team-b's own model is there, and loads.
        r = requests.post(f"{s.base}/v2/repository/models/ens_pre/load", headers=bearer(KEY_B),
                          timeout=60)
        assert r.status_code == 200, r.text
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_composing_models_are_pinned_while_the_ensemble_is_loaded(tmp_path):
    # Declared footprints: the ensemble 10 B, its three steps 100 B each,
    # `idle` and `late` 100 B each, a budget of 450 B. Loading `late` must evict one model: never a
    # step of the loaded ensemble, so `idle` goes.
    repo = tmp_path / "repo"
    repo.mkdir()
    write_pipeline_steps(repo, EXAMPLES)
    write_ensemble(repo, "pipeline", PIPELINE + "mmserve { memory_footprint_bytes: 10 }\n")
    write_doubler(repo)
    for name in ("ens_pre", "mlp_classifier", "ens_post"):
        config = repo / name / "config.pbtxt"
        config.write_text(config.read_text() + "mmserve { memory_footprint_bytes: 100 }\n")
    for name in ("idle", "late"):
        shutil.copytree(repo / "doubler", repo / name)
        config = repo / name / "config.pbtxt"
        config.write_text(config.read_text().replace('"doubler"', f'"{name}"') +
                          "mmserve { memory_footprint_bytes: 100 }\n")
    s = Server([repo], "--model-control-mode", "explicit", "--model-memory-budget", "450").start()
    try:
        c = httpclient.InferenceServerClient(s.url)
        c.load_model("pipeline")  # and its three steps, first
        c.load_model("idle")
        # The ensemble itself may be evicted like any model: used, it is not
        # the first to go.
        i = httpclient.InferInput("RAW", [1, 16], "FP32")
        i.set_data_from_numpy(np.zeros((1, 16), dtype=np.float32))
        c.infer("pipeline", [i])
        c.load_model("late")
        ready = {m["name"]: m["state"] for m in c.get_model_repository_index()}
        for name in ("pipeline", "ens_pre", "mlp_classifier", "ens_post", "late"):
            assert ready[name] == "READY", (name, ready)
        assert ready["idle"] != "READY", ready
        # With the ensemble gone, its steps may be evicted again: each was
        # used once, `late` (made more valuable) three times.
        c.unload_model("pipeline")
        for _ in range(3):
            x = httpclient.InferInput("X", [2], "FP32")
            x.set_data_from_numpy(np.ones(2, dtype=np.float32))
            c.infer("late", [x])
        c.load_model("idle")  # evicts a step
        ready = {m["name"]: m["state"] for m in c.get_model_repository_index()}
        assert ready["idle"] == "READY"
        assert [ready[n] for n in ("ens_pre", "mlp_classifier", "ens_post")].count("READY") == 2
    finally:
        assert s.stop() == 0, s.text()[-3000:]


STREAM_PIPE = """input [{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }]
output [
  { name: "OUT" data_type: TYPE_INT32 dims: [ -1 ] },
  { name: "IDX" data_type: TYPE_UINT32 dims: [ 1 ] }
]
model_transaction_policy { decoupled: true }
ensemble_scheduling {
  step [
    { model_name: "repeat" input_map { key: "IN" value: "IN" }
      output_map [{ key: "OUT" value: "value" }, { key: "IDX" value: "IDX" }] },
    { model_name: "int_double" input_map { key: "X" value: "value" } output_map { key: "Y" value: "OUT" } }
  ]
}
"""


HELD_PIPE = """input [
  { name: "IN" data_type: TYPE_INT32 dims: [ -1 ] },
  { name: "HOLD" data_type: TYPE_INT32 dims: [ 1 ] }
]
output [
  { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] },
  { name: "IDX" data_type: TYPE_UINT32 dims: [ 1 ] }
]
model_transaction_policy { decoupled: true }
ensemble_scheduling {
  step [
    { model_name: "repeat" input_map [{ key: "IN" value: "IN" }, { key: "HOLD" value: "HOLD" }]
      output_map [{ key: "OUT" value: "OUT" }, { key: "IDX" value: "IDX" }] }
  ]
}
"""


def test_a_decoupled_step_streams_through_the_steps_after_it(tmp_path):
    # repeat answers one response per value of IN; each flows through
    # int_double, and is one response of the (decoupled) ensemble.
    from test_decoupled import Stream, is_final
    from decoupled_models import REPEAT_CONFIG, write_model as write_backend_model
    repo = tmp_path / "repo"
    repo.mkdir()
    write_backend_model(repo, "repeat", REPEAT_CONFIG)
    x = helper.make_tensor_value_info("X", TensorProto.INT32, ["n"])
    y = helper.make_tensor_value_info("Y", TensorProto.INT32, ["n"])
    onnx_model(repo / "int_double" / "1" / "model.onnx", [helper.make_node("Add", ["X", "X"], ["Y"])],
               [x], [y])
    (repo / "int_double" / "config.pbtxt").write_text("""name: "int_double"
platform: "onnxruntime_onnx"
input [{ name: "X" data_type: TYPE_INT32 dims: [ -1 ] }]
output [{ name: "Y" data_type: TYPE_INT32 dims: [ -1 ] }]
""")
    write_ensemble(repo, "stream_pipe", STREAM_PIPE)
    write_ensemble(repo, "held_pipe", HELD_PIPE)
    s = Server([repo], "--enable-test-backends").start()
    try:
        stream = Stream(s)
        values = [3, 1, 4, 1, 5]
        stream.send("stream_pipe", values, request_id="r1", final_flag=True)
        got = {}
        for result, error in stream.until_final():
            assert error is None, error
            if result.as_numpy("OUT") is None:
                continue  # the final flag alone
            got[int(result.as_numpy("IDX")[0])] = result.as_numpy("OUT").tolist()
        assert got == {i: [2 * v] for i, v in enumerate(values)}
        # No value: only the final flag.
        stream.send("stream_pipe", [], request_id="r2", final_flag=True)
        results = stream.until_final()
        assert len(results) == 1 and results[0][0].as_numpy("OUT") is None
        stream.close()
        # Cancellation covers the pipeline: HOLD keeps repeat's only instance
        # on the request until its client goes away. The client cancels its
        # stream to the ensemble; only if that reaches the step does the next
        # request get an answer.
        held = Stream(s)
        held.send("held_pipe", [1], request_id="held", hold=True)
        result, error = held.next()
        assert error is None and int(result.as_numpy("OUT")[0]) == 1
        held.close(cancel=True)
        after = Stream(s)
        after.send("stream_pipe", [7], request_id="after", final_flag=True)
        got = [r for r, _ in after.until_final() if r.as_numpy("OUT") is not None]
        assert [r.as_numpy("OUT").tolist() for r in got] == [[14]]
        after.close()
        # One response per request cannot carry it (as any decoupled model).
        r = requests.post(f"{s.base}/v2/models/stream_pipe/infer", json={
            "inputs": [{"name": "IN", "datatype": "INT32", "shape": [1], "data": [1]}]}, timeout=10)
        assert r.status_code == 501 and "decoupled" in r.json()["error"]
    finally:
        assert s.stop() == 0, s.text()[-3000:]
