"""Business logic scripting (issue 19): Python models that call other models of
the server with pb_utils.InferenceRequest, written as Triton's documentation of
its Python backend writes them, driven through tritonclient HTTP and gRPC:
exec() against a direct call (the example mlp_preprocess_bls over the ONNX
mlp_classifier), exec(decoupled=True) on a decoupled callee, async_exec with
asyncio.gather in an `async def execute`, errors as response errors,
is_model_ready, and calls across tenants refused as unknown models."""
import shutil

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, Server
from decoupled_models import REPEAT_CONFIG
from decoupled_models import write_model as write_backend_model
from python_models import write_model
from test_tenancy import KEY_A, write_tenants

KEY_B = "team-b-key-0123456789abcdef"
MEAN = np.linspace(-1.0, 1.0, 16, dtype=np.float32)  # as examples/models/mlp_preprocess_bls
SCALE = np.linspace(0.5, 2.0, 16, dtype=np.float32)

# Calls `repeat` (decoupled: one response per value of IN) and returns the
# values it streamed, in order, and how many responses there were.
STREAM_CALLER_CONFIG = """
name: "stream_caller"
backend: "python"
input [{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }]
output [
  { name: "VALUES" data_type: TYPE_INT32 dims: [ -1 ] },
  { name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] }
]
"""
STREAM_CALLER = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            infer_request = pb_utils.InferenceRequest(
                model_name="repeat", requested_output_names=["OUT", "IDX"],
                inputs=[pb_utils.Tensor("IN", values)])
            got = []
            count = 0
            for infer_response in infer_request.exec(decoupled=True):
                if infer_response.has_error():
                    raise pb_utils.TritonModelException(infer_response.error().message())
                count += 1
                if len(infer_response.output_tensors()) > 0:
                    got.append(int(pb_utils.get_output_tensor_by_name(
                        infer_response, "OUT").as_numpy()[0]))
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("VALUES", np.array(got, dtype=np.int32)),
                pb_utils.Tensor("COUNT", np.array([count], dtype=np.int32))]))
        return responses
"""

# async def execute: four calls to mlp_classifier at once (asyncio.gather),
# rows scaled by 1, 2, 3, 4; returns the sum of their probabilities.
ASYNC_CALLER_CONFIG = """
name: "async_caller"
backend: "python"
max_batch_size: 8
input [{ name: "INPUT" data_type: TYPE_FP32 dims: [ 16 ] }]
output [{ name: "SUM" data_type: TYPE_FP32 dims: [ 10 ] }]
"""
ASYNC_CALLER = """
import asyncio

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    async def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            awaits = []
            for i in range(4):
                infer_request = pb_utils.InferenceRequest(
                    model_name="mlp_classifier", requested_output_names=["probabilities"],
                    inputs=[pb_utils.Tensor("input", x * (i + 1))])
                awaits.append(infer_request.async_exec())
            infer_responses = await asyncio.gather(*awaits)
            total = np.zeros((x.shape[0], 10), dtype=np.float32)
            for infer_response in infer_responses:
                if infer_response.has_error():
                    raise pb_utils.TritonModelException(infer_response.error().message())
                total += pb_utils.get_output_tensor_by_name(
                    infer_response, "probabilities").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("SUM", total)]))
        return responses
"""

# A decoupled model with `async def execute`: per request, the rows of INPUT
# scaled by 1 and 2 go to mlp_classifier at once (asyncio.gather); each
# answer is one response, then the final flag alone.
ASYNC_STREAMER_CONFIG = """
name: "async_streamer"
backend: "python"
input [{ name: "INPUT" data_type: TYPE_FP32 dims: [ 1, 16 ] }]
output [{ name: "probabilities" data_type: TYPE_FP32 dims: [ 1, 10 ] }]
model_transaction_policy { decoupled: true }
"""
ASYNC_STREAMER = """
import asyncio

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    async def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            calls = [pb_utils.InferenceRequest(
                model_name="mlp_classifier", requested_output_names=["probabilities"],
                inputs=[pb_utils.Tensor("input", x * k)]).async_exec() for k in (1, 2)]
            for infer_response in await asyncio.gather(*calls):
                sender.send(pb_utils.InferenceResponse([pb_utils.get_output_tensor_by_name(
                    infer_response, "probabilities")]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""

# Calls the model TARGET names with INPUT as "input"; a BLS error becomes this
# request's error (its code kept), so the client sees the callee's message.
PROBE_CONFIG = """
name: "probe"
backend: "python"
max_batch_size: 8
input [
  { name: "TARGET" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "INPUT" data_type: TYPE_FP32 dims: [ -1 ] }
]
output [
  { name: "probabilities" data_type: TYPE_FP32 dims: [ 10 ] },
  { name: "READY" data_type: TYPE_BOOL dims: [ 1 ] }
]
"""
PROBE = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            target = pb_utils.get_input_tensor_by_name(request, "TARGET").as_numpy()[0][0]
            target = target.decode()
            x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            ready = pb_utils.is_model_ready(target)
            infer_response = pb_utils.InferenceRequest(
                model_name=target, requested_output_names=["probabilities"],
                inputs=[pb_utils.Tensor("input", x)], timeout=10_000_000).exec()
            if infer_response.has_error():
                responses.append(pb_utils.InferenceResponse(error=infer_response.error()))
                continue
            probabilities = pb_utils.get_output_tensor_by_name(
                infer_response, "probabilities").as_numpy()
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("probabilities", probabilities),
                pb_utils.Tensor("READY", np.full((x.shape[0], 1), ready))]))
        return responses
"""


def copy_example(repo, name, as_name=None):
    as_name = as_name or name
    shutil.copytree(EXAMPLES / name, repo / as_name)
    if as_name != name:
        config = repo / as_name / "config.pbtxt"
        config.write_text(config.read_text().replace(f'name: "{name}"', f'name: "{as_name}"'))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("bls_repo")
    copy_example(repo, "mlp_classifier")
    copy_example(repo, "mlp_preprocess_bls")
    write_backend_model(repo, "repeat", REPEAT_CONFIG)
    write_model(repo, "stream_caller", STREAM_CALLER, STREAM_CALLER_CONFIG)
    write_model(repo, "async_caller", ASYNC_CALLER, ASYNC_CALLER_CONFIG)
    write_model(repo, "probe", PROBE, PROBE_CONFIG)
    write_model(repo, "async_streamer", ASYNC_STREAMER, ASYNC_STREAMER_CONFIG)
    s = Server([repo], "--enable-test-backends").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


CLIENTS = [(httpclient, "url"), (grpcclient, "grpc_url")]


def client_of(server, module, attr):
    return module.InferenceServerClient(getattr(server, attr))


def tensor(module, name, array, datatype):
    t = module.InferInput(name, list(array.shape), datatype)
    t.set_data_from_numpy(array)
    return t


@pytest.mark.parametrize("module,attr", CLIENTS)
def test_the_bls_example_answers_as_a_direct_call(server, module, attr):
    client = client_of(server, module, attr)
    raw = np.random.default_rng(19).normal(0, 3, size=(3, 16)).astype(np.float32)
    bls = client.infer("mlp_preprocess_bls", [tensor(module, "RAW", raw, "FP32")])
    direct = client.infer("mlp_classifier",
                          [tensor(module, "input", (raw - MEAN) / SCALE, "FP32")])
    expected = direct.as_numpy("probabilities")
    got = bls.as_numpy("PROBABILITIES")
    assert got.shape == (3, 10)
    np.testing.assert_array_equal(got, expected)
    assert bls.as_numpy("LABEL").ravel().tolist() == expected.argmax(-1).tolist()
    # A wrong shape is refused before the model runs.
    with pytest.raises(InferenceServerException):
        client.infer("mlp_preprocess_bls",
                     [tensor(module, "RAW", np.zeros((1, 8), np.float32), "FP32")])


@pytest.mark.parametrize("module,attr", CLIENTS)
def test_exec_decoupled_iterates_a_decoupled_callees_responses(server, module, attr):
    client = client_of(server, module, attr)
    values = np.array([7, -3, 12, 0, 5], dtype=np.int32)
    result = client.infer("stream_caller", [tensor(module, "IN", values, "INT32")])
    assert result.as_numpy("VALUES").tolist() == values.tolist()
    # Five responses, then the final flag alone (an empty response).
    assert result.as_numpy("COUNT").tolist() == [6]
    empty = client.infer("stream_caller",
                         [tensor(module, "IN", np.zeros(0, dtype=np.int32), "INT32")])
    assert empty.as_numpy("VALUES").tolist() == [] and empty.as_numpy("COUNT").tolist() == [1]


@pytest.mark.parametrize("module,attr", CLIENTS)
def test_async_exec_with_gather_in_an_async_execute(server, module, attr):
    client = client_of(server, module, attr)
    x = np.random.default_rng(3).normal(0, 1, size=(2, 16)).astype(np.float32)
    expected = sum(client.infer("mlp_classifier", [tensor(module, "input", x * k, "FP32")])
                   .as_numpy("probabilities") for k in (1, 2, 3, 4))
    for _ in range(3):  # the instance's event loop serves one request after another
        got = client.infer("async_caller", [tensor(module, "INPUT", x, "FP32")]).as_numpy("SUM")
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_decoupled_async_execute_streams_bls_answers(server):
    import queue
    client = grpcclient.InferenceServerClient(server.grpc_url)
    x = np.random.default_rng(5).normal(0, 1, size=(1, 16)).astype(np.float32)
    expected = [client.infer("mlp_classifier", [tensor(grpcclient, "input", x * k, "FP32")])
                .as_numpy("probabilities") for k in (1, 2)]
    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        for _ in range(2):
            client.async_stream_infer("async_streamer", [tensor(grpcclient, "INPUT", x, "FP32")],
                                      enable_empty_final_response=True)
            got = []
            while True:
                result, error = results.get(timeout=60)
                assert error is None, error
                if result.get_response().parameters["triton_final_response"].bool_param:
                    break
                got.append(result.as_numpy("probabilities"))
            assert len(got) == 2
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g, e)
    finally:
        client.stop_stream()


def probe(client, module, target, x):
    return client.infer("probe", [tensor(module, "TARGET", np.array([[target.encode()]] * len(x),
                                                                    dtype=np.object_), "BYTES"),
                                  tensor(module, "INPUT", x, "FP32")])


@pytest.mark.parametrize("module,attr", CLIENTS)
def test_bls_errors_are_response_errors_and_is_model_ready_answers(server, module, attr):
    client = client_of(server, module, attr)
    x = np.ones((1, 16), dtype=np.float32)
    ok = probe(client, module, "mlp_classifier", x)
    assert ok.as_numpy("READY").tolist() == [[True]]
    np.testing.assert_array_equal(
        ok.as_numpy("probabilities"),
        client.infer("mlp_classifier", [tensor(module, "input", x, "FP32")])
        .as_numpy("probabilities"))
    with pytest.raises(InferenceServerException) as unknown:
        probe(client, module, "no_such_model", x)
    assert "no_such_model" in str(unknown.value)
    assert unknown.value.status() in ("404", "StatusCode.NOT_FOUND"), unknown.value.status()
    # A wrong input (8 features where the callee takes 16): the callee's own refusal.
    with pytest.raises(InferenceServerException) as wrong:
        probe(client, module, "mlp_classifier", np.ones((1, 8), dtype=np.float32))
    assert "input" in str(wrong.value) and "mlp_classifier" in str(wrong.value), wrong.value
    assert wrong.value.status() in ("400", "StatusCode.INVALID_ARGUMENT"), wrong.value.status()
    # The caller keeps serving.
    assert probe(client, module, "mlp_classifier", x).as_numpy("READY").tolist() == [[True]]


def test_a_tenants_model_cannot_call_another_tenants_model(tmp_path):
    repo_a, repo_b = tmp_path / "a", tmp_path / "b"
    repo_a.mkdir()
    repo_b.mkdir()
    write_model(repo_a, "probe", PROBE, PROBE_CONFIG)
    copy_example(repo_a, "mlp_classifier", "own_classifier")
    copy_example(repo_b, "mlp_classifier", "secret_classifier")
    tenants = write_tenants(tmp_path / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]},
        {"id": "team-b", "keys": [KEY_B], "repositories": [repo_b]},
    ])
    s = Server([repo_a, repo_b], "--tenants", tenants).start()
    try:
        a = {"Authorization": f"Bearer {KEY_A}"}
        b = {"Authorization": f"Bearer {KEY_B}"}
        client = httpclient.InferenceServerClient(s.url)
        x = np.ones((1, 16), dtype=np.float32)

        def call(target):
            inputs = [tensor(httpclient, "TARGET", np.array([[target.encode()]], np.object_),
                             "BYTES"),
                      tensor(httpclient, "INPUT", x, "FP32")]
            return client.infer("probe", inputs, headers=dict(a))

        assert call("own_classifier").as_numpy("READY").tolist() == [[True]]
        # Team b's model exists and serves team b...
        client.infer("secret_classifier", [tensor(httpclient, "input", x, "FP32")], headers=dict(b))
        # ...but team a's model is told exactly what it is told of a model
        # that does not exist.
        with pytest.raises(InferenceServerException) as hidden:
            call("secret_classifier")
        with pytest.raises(InferenceServerException) as unknown:
            call("nonexistent_clsfr")
        assert hidden.value.status() == unknown.value.status() == "404"
        assert (str(hidden.value).replace("secret_classifier", "<M>")
                == str(unknown.value).replace("nonexistent_clsfr", "<M>")), (hidden.value,
                                                                             unknown.value)
        # Charged to team a: its usage counts the BLS call to own_classifier.
        r = requests.get(s.base + "/v2/usage", headers=a)
        assert r.status_code == 200, r.text
        mine = {t["tenant"]: t for t in r.json()["tenants"]}["team-a"]
        assert "own_classifier" in str(mine) and "secret_classifier" not in str(mine), mine
    finally:
        assert s.stop() == 0, s.text()[-3000:]
