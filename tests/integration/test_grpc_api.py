"""KServe v2 gRPC (inference.GRPCInferenceService) through tritonclient.grpc."""
import queue

import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from test_http_api import EXAMPLE_MODELS, mlp_reference
from test_http_dtypes import CASES


def test_health_and_server_metadata(grpc_client):
    assert grpc_client.is_server_live()
    assert grpc_client.is_server_ready()
    md = grpc_client.get_server_metadata(as_json=True)
    assert md["name"] == "mmserve"
    assert "binary_tensor_data" in md["extensions"]


@pytest.mark.parametrize("model", EXAMPLE_MODELS)
def test_every_example_model_metadata_and_config(grpc_client, http_client, model):
    assert grpc_client.is_model_ready(model)
    assert grpc_client.is_model_ready(model, "1")
    md = grpc_client.get_model_metadata(model, as_json=True)
    http_md = http_client.get_model_metadata(model)
    assert md["name"] == http_md["name"] and md["platform"] == "onnxruntime_onnx"
    assert md["versions"] == ["1"]
    for g, h in zip(md["inputs"] + md["outputs"], http_md["inputs"] + http_md["outputs"]):
        assert g["name"] == h["name"] and g["datatype"] == h["datatype"]
        assert [int(d) for d in g["shape"]] == h["shape"]
    cfg = grpc_client.get_model_config(model, as_json=True)["config"]
    assert cfg["name"] == model
    assert [i["name"] for i in cfg["input"]] == [i["name"] for i in http_md["inputs"]]


def test_repository_index(grpc_client):
    index = {m["name"]: m for m in grpc_client.get_model_repository_index(as_json=True)["models"]}
    for name in EXAMPLE_MODELS:
        assert index[name]["state"] == "READY"
    assert index["wrong_dtype"]["state"] == "UNAVAILABLE"
    assert "TYPE_INT32" in index["wrong_dtype"]["reason"]


def test_add_sub(grpc_client):
    a = np.array([1.0, 2.5, -3.0, 4.0], dtype=np.float32)
    b = np.array([0.5, 0.5, 1.0, -4.0], dtype=np.float32)
    inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"), grpcclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = grpc_client.infer("add_sub", inputs, request_id="g-1")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    resp = result.get_response(as_json=True)
    assert resp["id"] == "g-1" and resp["model_name"] == "add_sub" and resp["model_version"] == "1"


def test_requested_output_subset(grpc_client):
    inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"), grpcclient.InferInput("INPUT1", [4], "FP32")]
    for i in inputs:
        i.set_data_from_numpy(np.ones(4, np.float32))
    result = grpc_client.infer("add_sub", inputs, outputs=[grpcclient.InferRequestedOutput("OUTPUT1")])
    assert [o.name for o in result.get_response().outputs] == ["OUTPUT1"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.zeros(4, np.float32))


@pytest.mark.parametrize("batch", [1, 5])
def test_mlp_matches_reference(grpc_client, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)
    inp = grpcclient.InferInput("input", [batch, 16], "FP32")
    inp.set_data_from_numpy(x)
    probs = grpc_client.infer("mlp_classifier", [inp]).as_numpy("probabilities")
    np.testing.assert_allclose(probs, mlp_reference(x), rtol=1e-4, atol=1e-6)


def test_image_cnn_and_string_int(grpc_client):
    x = np.zeros((1, 3, 64, 64), np.float32)
    inp = grpcclient.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    assert grpc_client.infer("image_cnn", [inp]).as_numpy("logits").shape == (1, 10)
    tokens = grpcclient.InferInput("tokens", [2], "INT64")
    tokens.set_data_from_numpy(np.array([3, -4], np.int64))
    text = grpcclient.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"grpc"], dtype=np.object_))
    r = grpc_client.infer("string_int", [tokens, text])
    np.testing.assert_array_equal(r.as_numpy("tokens_doubled"), [6, -8])
    assert list(r.as_numpy("text_upper")) == [b"GRPC"]


def test_every_datatype_round_trip(grpc_client):
    inputs, outputs = [], []
    for datatype, (suffix, dtype, values) in CASES.items():
        inp = grpcclient.InferInput(f"in_{suffix}", [len(values)], datatype)
        inp.set_data_from_numpy(np.array(values, dtype=dtype))
        inputs.append(inp)
        outputs.append(grpcclient.InferRequestedOutput(f"out_{suffix}"))
    bf16 = grpcclient.InferInput("in_bf16", [3], "BF16")
    bf16.set_data_from_numpy(np.array([1.0, -2.0, 0.5], dtype=ml_dtypes.bfloat16))
    inputs.append(bf16)
    outputs.append(grpcclient.InferRequestedOutput("out_bf16"))
    result = grpc_client.infer("identity_all_types", inputs, outputs=outputs)
    for datatype, (suffix, dtype, values) in CASES.items():
        got = result.as_numpy(f"out_{suffix}")
        if datatype == "BYTES":
            assert list(got) == list(values)
        else:
            np.testing.assert_array_equal(got, np.array(values, dtype=dtype), err_msg=datatype)
    np.testing.assert_array_equal(result.as_numpy("out_bf16").astype(np.float32), [1.0, -2.0, 0.5])


def add_sub_inputs(a=None, datatype="FP32", shape=(4,)):
    a = np.arange(4, dtype=np.float32) if a is None else a
    inputs = [grpcclient.InferInput("INPUT0", list(shape), datatype),
              grpcclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(np.ones(4, np.float32))
    return inputs


def expect_grpc_error(fn, code, *words):
    with pytest.raises(InferenceServerException) as e:
        fn()
    assert e.value.status() == code, (e.value.status(), e.value.message())
    for w in words:
        assert w in e.value.message(), (w, e.value.message())


def test_bad_inputs_get_the_http_messages_over_grpc(grpc_client):
    expect_grpc_error(lambda: grpc_client.infer("nope", add_sub_inputs()),
                      "StatusCode.NOT_FOUND", "nope")
    expect_grpc_error(lambda: grpc_client.infer("add_sub", add_sub_inputs(), model_version="9"),
                      "StatusCode.NOT_FOUND", "9")
    expect_grpc_error(lambda: grpc_client.infer("add_sub", add_sub_inputs(np.arange(4), "INT64")),
                      "StatusCode.INVALID_ARGUMENT", "INPUT0", "expected FP32 [4], got INT64 [4]")
    expect_grpc_error(lambda: grpc_client.infer(
        "add_sub", add_sub_inputs(np.zeros((2, 2), np.float32), shape=(2, 2))),
        "StatusCode.INVALID_ARGUMENT", "[2,2]")
    expect_grpc_error(lambda: grpc_client.infer("add_sub", add_sub_inputs()[:1]),
                      "StatusCode.INVALID_ARGUMENT", "missing input 'INPUT1'")
    bogus = grpcclient.InferInput("BOGUS", [1], "FP32")
    bogus.set_data_from_numpy(np.ones(1, np.float32))
    expect_grpc_error(lambda: grpc_client.infer("add_sub", add_sub_inputs() + [bogus]),
                      "StatusCode.INVALID_ARGUMENT", "BOGUS")
    expect_grpc_error(lambda: grpc_client.infer("add_sub", add_sub_inputs(), outputs=[
        grpcclient.InferRequestedOutput("NOPE")]), "StatusCode.INVALID_ARGUMENT", "NOPE")
    expect_grpc_error(lambda: grpc_client.infer("wrong_dtype", add_sub_inputs()),
                      "StatusCode.UNAVAILABLE", "TYPE_INT32")
    # The server still serves.
    test_add_sub(grpc_client)


def test_raw_contents_of_the_wrong_size(grpc_client):
    inputs = add_sub_inputs()
    inputs[0]._raw_content = b"\0" * 15  # a truncated FP32 tensor
    expect_grpc_error(lambda: grpc_client.infer("add_sub", inputs),
                      "StatusCode.INVALID_ARGUMENT", "INPUT0", "needs 16 bytes, got 15")


def test_lifecycle_rpcs_say_not_available(grpc_client):
    expect_grpc_error(lambda: grpc_client.load_model("add_sub"), "StatusCode.UNAVAILABLE",
                      "model-control-mode none")
    expect_grpc_error(lambda: grpc_client.unload_model("add_sub"), "StatusCode.UNAVAILABLE",
                      "model-control-mode none")
    # (Statistics: test_observability.py.)
    expect_grpc_error(lambda: grpc_client.get_inference_statistics("no_such_model"),
                      "StatusCode.NOT_FOUND", "unknown model")


def test_stream_interleaves_good_and_bad_requests(grpc_client):
    results = queue.Queue()
    grpc_client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        sent = {}
        for i in range(12):
            rid = f"s{i}"
            if i % 3 == 2:
                grpc_client.async_stream_infer("add_sub", add_sub_inputs(np.arange(4), "INT64"),
                                               request_id=rid)
                sent[rid] = None
            else:
                a = np.full(4, i, np.float32)
                grpc_client.async_stream_infer("add_sub", add_sub_inputs(a), request_id=rid)
                sent[rid] = a + 1
        got = {}
        for _ in sent:
            result, error = results.get(timeout=60)
            if error is not None:
                assert "expected FP32" in str(error)
                got[f"error{len(got)}"] = None
            else:
                got[result.get_response().id] = result.as_numpy("OUTPUT0")
    finally:
        grpc_client.stop_stream()
    good = {k: v for k, v in sent.items() if v is not None}
    for rid, want in good.items():
        np.testing.assert_array_equal(got[rid], want)
    assert len(got) == len(sent)  # every request answered, the stream survived the errors


def raw_stub(server):
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_url)
    return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel), service_pb2


def good_request(pb):
    req = pb.ModelInferRequest(model_name="add_sub")
    for name in ("INPUT0", "INPUT1"):
        t = req.inputs.add(name=name, datatype="FP32", shape=[4])
        t.contents.fp32_contents.extend([1, 2, 3, 4])
    return req


@pytest.mark.parametrize("case", ["negative dim", "overflowing dims", "duplicate input",
                                  "no data", "count mismatch", "unknown datatype",
                                  "raw and typed", "non-numeric type"])
def test_malformed_requests_over_raw_grpc(server, case):
    import grpc

    channel, stub, pb = raw_stub(server)
    try:
        req = good_request(pb)
        t = req.inputs[0]
        if case == "negative dim":
            del t.shape[:]
            t.shape.extend([-4])
        elif case == "overflowing dims":
            del t.shape[:]
            t.shape.extend([2**40, 2**40, 2**40])
        elif case == "duplicate input":
            req.inputs.add().CopyFrom(req.inputs[0])
        elif case == "no data":
            t.ClearField("contents")
        elif case == "count mismatch":
            t.contents.fp32_contents.append(5)
        elif case == "unknown datatype":
            t.datatype = "FLOAT"
        elif case == "raw and typed":
            req.raw_input_contents.extend([b"\0" * 16, b"\0" * 16])
        elif case == "non-numeric type":
            t.ClearField("contents")
            t.contents.bytes_contents.extend([b"a", b"b", b"c", b"d"])
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        assert "INPUT0" in e.value.details(), e.value.details()
        # The server keeps serving on the same channel.
        ok = stub.ModelInfer(good_request(pb), timeout=30)
        assert len(ok.raw_output_contents) == 2
    finally:
        channel.close()


def test_message_over_max_request_bytes_is_resource_exhausted():
    import grpc

    from conftest import EXAMPLES, Server

    s = Server([EXAMPLES], "--max-request-bytes", "4096").start()
    try:
        channel, stub, pb = raw_stub(s)
        req = good_request(pb)
        req.inputs[0].contents.fp32_contents.extend([0.5] * 4000)
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req, timeout=30)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
        assert len(stub.ModelInfer(good_request(pb), timeout=30).raw_output_contents) == 2
        channel.close()
    finally:
        assert s.stop() == 0, s.text()[-3000:]


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_responses(grpc_client, algorithm):
    a = np.array([1, 2, 3, 4], dtype=np.float32)
    result = grpc_client.infer("add_sub", add_sub_inputs(a), compression_algorithm=algorithm)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + 1)


def test_abandoned_stream_leaves_the_server_serving(server):
    # A client that cancels its stream with requests in flight: the server
    # drops their answers and keeps serving everyone else.
    import grpc

    channel, stub, pb = raw_stub(server)
    try:
        def requests():
            for _ in range(8):
                yield good_request(pb)
        responses = stub.ModelStreamInfer(requests(), timeout=30)
        next(responses)
        responses.cancel()
        with pytest.raises(grpc.RpcError) as e:
            for _ in responses:
                pass
        assert e.value.code() == grpc.StatusCode.CANCELLED
        assert len(stub.ModelInfer(good_request(pb), timeout=30).raw_output_contents) == 2
    finally:
        channel.close()


def test_concurrent_calls_on_one_channel(grpc_client):
    # Calls in flight together: some complete inline on the queue's thread,
    # some on execution threads; every one gets its own answer.
    done = queue.Queue()
    for i in range(64):
        a = np.full(4, i, np.float32)
        grpc_client.async_infer("add_sub", add_sub_inputs(a), request_id=str(i),
                                callback=lambda result, error: done.put((result, error)))
    for _ in range(64):
        result, error = done.get(timeout=60)
        assert error is None, error
        i = int(result.get_response().id)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full(4, i + 1, np.float32))
