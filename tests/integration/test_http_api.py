"""KServe v2 REST endpoints through tritonclient.http and raw HTTP."""
import json
import socket

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

EXAMPLE_MODELS = ["add_sub", "mlp_classifier", "string_int", "image_cnn"]


def test_health_and_server_metadata(server, http_client):
    assert http_client.is_server_live()
    assert http_client.is_server_ready()
    md = http_client.get_server_metadata()
    assert md["name"] == "mmserve"
    assert "binary_tensor_data" in md["extensions"]
    r = requests.get(server.base + "/v2/health/live")
    assert r.status_code == 200 and r.headers["Content-Length"] == "0"


@pytest.mark.parametrize("model", EXAMPLE_MODELS)
def test_every_example_model_is_ready_with_metadata_and_config(http_client, model):
    assert http_client.is_model_ready(model)
    assert http_client.is_model_ready(model, "1")
    md = http_client.get_model_metadata(model)
    assert md["name"] == model
    assert md["versions"] == ["1"]
    assert md["platform"] == "onnxruntime_onnx"
    assert md["inputs"] and md["outputs"]
    for t in md["inputs"] + md["outputs"]:
        assert t["datatype"] in ("FP32", "INT64", "BYTES")
    cfg = http_client.get_model_config(model)
    assert cfg["name"] == model
    assert [i["name"] for i in cfg["input"]] == [i["name"] for i in md["inputs"]]
    assert http_client.get_model_metadata(model, "1") == md


def test_batched_model_metadata_has_batch_dim(http_client):
    md = http_client.get_model_metadata("mlp_classifier")
    assert md["inputs"][0]["shape"] == [-1, 16]
    assert md["outputs"][0]["shape"] == [-1, 10]
    cfg = http_client.get_model_config("mlp_classifier")
    assert cfg["max_batch_size"] == 64
    assert cfg["input"][0]["dims"] == [16]
    assert cfg["input"][0]["data_type"] == "TYPE_FP32"


@pytest.mark.parametrize("binary", [False, True])
def test_add_sub(http_client, binary):
    a = np.array([1.0, 2.5, -3.0, 4.0], dtype=np.float32)
    b = np.array([0.5, 0.5, 1.0, -4.0], dtype=np.float32)
    inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a, binary_data=binary)
    inputs[1].set_data_from_numpy(b, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary),
               httpclient.InferRequestedOutput("OUTPUT1", binary_data=binary)]
    result = http_client.infer("add_sub", inputs, outputs=outputs, request_id="req-7")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    resp = result.get_response()
    assert resp["id"] == "req-7"
    assert resp["model_name"] == "add_sub"
    assert resp["model_version"] == "1"


def mlp_reference(x):
    """The MLP's forward pass computed with numpy from the ONNX file's weights."""
    import onnx
    from onnx import numpy_helper

    from conftest import EXAMPLES

    model = onnx.load(str(EXAMPLES / "mlp_classifier" / "1" / "model.onnx"))
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    h = x.astype(np.float64)
    for node in model.graph.node:
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            W = w[node.input[1]].astype(np.float64)
            if attrs.get("transB", 0):
                W = W.T
            h = h @ W + w[node.input[2]]
        elif node.op_type == "Relu":
            h = np.maximum(h, 0)
        elif node.op_type == "Softmax":
            e = np.exp(h - h.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
        elif node.op_type == "MatMul":
            h = h @ w[node.input[1]]
        elif node.op_type == "Add":
            h = h + w[node.input[1]]
    return h


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_mlp_matches_reference(http_client, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)
    inp = httpclient.InferInput("input", [batch, 16], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    probs = http_client.infer("mlp_classifier", [inp]).as_numpy("probabilities")
    assert probs.shape == (batch, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, mlp_reference(x), rtol=1e-4, atol=1e-6)


def test_mlp_batch_over_max_is_rejected(http_client):
    inp = httpclient.InferInput("input", [65, 16], "FP32")
    inp.set_data_from_numpy(np.zeros((65, 16), np.float32), binary_data=True)
    with pytest.raises(InferenceServerException, match="batch size 65"):
        http_client.infer("mlp_classifier", [inp])


def test_image_cnn(http_client):
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    inp = httpclient.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    logits = http_client.infer("image_cnn", [inp]).as_numpy("logits")
    assert logits.shape == (2, 10)
    assert np.isfinite(logits).all()
    # Each row of a batch is computed independently.
    inp1 = httpclient.InferInput("image", [1, 3, 64, 64], "FP32")
    inp1.set_data_from_numpy(x[1:2], binary_data=True)
    np.testing.assert_allclose(http_client.infer("image_cnn", [inp1]).as_numpy("logits")[0],
                               logits[1], rtol=1e-4, atol=1e-5)


def test_repository_index_lists_good_and_bad_models(server, http_client):
    index = {m["name"]: m for m in http_client.get_model_repository_index()}
    for name in EXAMPLE_MODELS:
        assert index[name]["state"] == "READY", index[name]
        assert index[name]["version"] == "1"
    for bad in ("garbage", "bad_config", "wrong_dtype"):
        assert index[bad]["state"] == "UNAVAILABLE"
        assert index[bad]["reason"], index[bad]
    assert "TYPE_INT32" in index["wrong_dtype"]["reason"]
    assert "TYPE_FP32" in index["wrong_dtype"]["reason"]
    assert "bad_config" in index["bad_config"]["reason"] or "line" in index["bad_config"]["reason"]
    ready = requests.post(server.base + "/v2/repository/index", json={"ready": True}).json()
    assert {m["name"] for m in ready} >= set(EXAMPLE_MODELS)
    assert not {m["name"] for m in ready} & {"garbage", "bad_config", "wrong_dtype"}


def test_unavailable_model_reports_its_reason(server, http_client):
    assert not http_client.is_model_ready("wrong_dtype")
    r = requests.post(server.base + "/v2/models/wrong_dtype/infer",
                      json={"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32",
                                        "data": [1, 2, 3, 4]}]})
    assert r.status_code == 503
    assert "TYPE_INT32" in r.json()["error"]


def raw_infer(server, body, headers=None, path="/v2/models/add_sub/infer"):
    return requests.post(server.base + path, data=body, headers=headers or {})


def test_nested_data_id_and_requested_outputs(server):
    body = {"id": "abc", "inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [[1, 2], [3, 4]]},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}],
        "outputs": [{"name": "OUTPUT1"}]}
    r = raw_infer(server, json.dumps(body))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert int(r.headers["Content-Length"]) == len(r.content)
    out = r.json()
    assert out["id"] == "abc"
    assert [o["name"] for o in out["outputs"]] == ["OUTPUT1"]
    assert out["outputs"][0]["data"] == [0, 1, 2, 3]
    assert out["outputs"][0]["shape"] == [4]
    assert out["outputs"][0]["datatype"] == "FP32"


def test_binary_data_output_parameter(server):
    body = {"inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}],
        "parameters": {"binary_data_output": True}}
    r = raw_infer(server, json.dumps(body))
    assert r.status_code == 200, r.text
    hlen = int(r.headers["Inference-Header-Content-Length"])
    header = json.loads(r.content[:hlen])
    assert int(r.headers["Content-Length"]) == len(r.content) == hlen + 32
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sizes == [16, 16]
    out0 = np.frombuffer(r.content[hlen:hlen + 16], np.float32)
    np.testing.assert_array_equal(out0, [2, 3, 4, 5])


def test_keep_alive_and_pipelining(server):
    body = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [0, 0, 0, 0]}]}).encode()
    req = (b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    ready = b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(req + ready + req)  # three pipelined requests in one write
        data = b""
        responses = []
        while len(responses) < 3:
            chunk = s.recv(65536)
            assert chunk, "connection closed early"
            data += chunk
            while b"\r\n\r\n" in data:
                head, rest = data.split(b"\r\n\r\n", 1)
                length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
                if len(rest) < length:
                    break
                responses.append((head, rest[:length]))
                data = rest[length:]
    assert [h.split(b"\r\n")[0] for h, _ in responses] == [b"HTTP/1.1 200 OK"] * 3
    assert json.loads(responses[0][1])["outputs"][0]["data"] == [1, 2, 3, 4]
    assert responses[1][1] == b""
    assert responses[2][1] == responses[0][1]


def test_string_int_model_autocompleted_without_config(http_client):
    cfg = http_client.get_model_config("string_int")
    assert cfg["platform"] == "onnxruntime_onnx"
    md = http_client.get_model_metadata("string_int")
    types = {t["name"]: t["datatype"] for t in md["inputs"] + md["outputs"]}
    assert "BYTES" in types.values() and "INT64" in types.values()
