"""Every KServe datatype that ONNX has, through the server and back, as JSON
and as binary tensors (identity_all_types model)."""
import json

import ml_dtypes
import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

# KServe datatype -> (input suffix, numpy dtype, sample values)
CASES = {
    "BOOL": ("bool", np.bool_, [True, False, True]),
    "UINT8": ("uint8", np.uint8, [0, 7, 255]),
    "UINT16": ("uint16", np.uint16, [0, 7, 65535]),
    "UINT32": ("uint32", np.uint32, [0, 7, 2**32 - 1]),
    "UINT64": ("uint64", np.uint64, [0, 7, 2**64 - 1]),
    "INT8": ("int8", np.int8, [-128, 0, 127]),
    "INT16": ("int16", np.int16, [-32768, 0, 32767]),
    "INT32": ("int32", np.int32, [-2**31, 0, 2**31 - 1]),
    "INT64": ("int64", np.int64, [-2**63, 0, 2**63 - 1]),
    "FP16": ("fp16", np.float16, [-1.5, 0.0, 65504.0]),
    "FP32": ("fp32", np.float32, [-1.25, 3.0e38, 1.0e-30]),
    "FP64": ("fp64", np.float64, [-1.25, 1.0e300, 5e-324]),
    "BYTES": ("bytes", np.object_, [b"", "h\u00e9llo".encode(), b"x" * 300]),
}


def all_inputs(binary, bf16_values=(1.0, -2.0, 0.5)):
    """The model's inputs are all required: one request carries every dtype."""
    inputs, outputs = [], []
    for datatype, (suffix, dtype, values) in CASES.items():
        data = np.array(values, dtype=dtype)
        inp = httpclient.InferInput(f"in_{suffix}", list(data.shape), datatype)
        inp.set_data_from_numpy(data, binary_data=binary)
        inputs.append(inp)
        outputs.append(httpclient.InferRequestedOutput(f"out_{suffix}", binary_data=binary))
    # tritonclient sends BF16 only as binary, from ml_dtypes.bfloat16 arrays.
    bf16 = httpclient.InferInput("in_bf16", [len(bf16_values)], "BF16")
    bf16.set_data_from_numpy(np.array(bf16_values, dtype=ml_dtypes.bfloat16), binary_data=True)
    inputs.append(bf16)
    outputs.append(httpclient.InferRequestedOutput("out_bf16", binary_data=True))
    return inputs, outputs


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_identity_round_trip_of_every_datatype(http_client, binary):
    inputs, outputs = all_inputs(binary)
    result = http_client.infer("identity_all_types", inputs, outputs=outputs)
    for datatype, (suffix, dtype, values) in CASES.items():
        data = np.array(values, dtype=dtype)
        got = result.as_numpy(f"out_{suffix}")
        assert got.shape == data.shape, datatype
        if datatype == "BYTES":
            # JSON carries strings; binary carries bytes (as Triton does).
            assert [g.encode() if isinstance(g, str) else g for g in got] == list(data)
        else:
            assert got.dtype == data.dtype, datatype
            np.testing.assert_array_equal(got, data, err_msg=datatype)
        out = result.get_output(f"out_{suffix}")
        assert out["datatype"] == datatype
    np.testing.assert_array_equal(result.as_numpy("out_bf16").astype(np.float32), [1.0, -2.0, 0.5])


def json_inputs(**override):
    """Every input as JSON (BF16 from JSON numbers); `override` replaces entries by suffix."""
    inputs = []
    for datatype, (suffix, dtype, values) in CASES.items():
        data = [v.decode() for v in values] if datatype == "BYTES" else [
            bool(v) if datatype == "BOOL" else (float(v) if datatype.startswith("FP") else int(v))
            for v in values]
        inputs.append({"name": f"in_{suffix}", "shape": [len(data)], "datatype": datatype,
                       "data": data})
    inputs.append({"name": "in_bf16", "shape": [3], "datatype": "BF16", "data": [1.0, -2.5, 0.0]})
    for spec in inputs:
        suffix = spec["name"][3:]
        if suffix in override:
            spec.clear()
            spec.update(override[suffix])
    return inputs


def test_bf16_json_and_binary(server):
    url = server.base + "/v2/models/identity_all_types/infer"
    # JSON numbers in, JSON numbers out.
    r = requests.post(url, data=json.dumps({"inputs": json_inputs(), "outputs": [{"name": "out_bf16"}]}))
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1.0, -2.5, 0.0]
    # Raw bf16 bit patterns in the binary section come back unchanged.
    bits = np.array([0x3F80, 0xC000, 0x7F80, 0x0000], dtype=np.uint16)  # 1, -2, inf, 0
    inputs = json_inputs(bf16={"name": "in_bf16", "shape": [4], "datatype": "BF16",
                               "parameters": {"binary_data_size": 8}})
    header = json.dumps({"inputs": inputs, "outputs": [
        {"name": "out_bf16", "parameters": {"binary_data": True}}]}).encode()
    r = requests.post(url, data=header + bits.tobytes(),
                      headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200, r.text
    hlen = int(r.headers["Inference-Header-Content-Length"])
    assert np.array_equal(np.frombuffer(r.content[hlen:], np.uint16), bits)


def test_string_int_model(http_client):
    tokens = httpclient.InferInput("tokens", [3], "INT64")
    tokens.set_data_from_numpy(np.array([1, -2, 2**40], dtype=np.int64))
    text = httpclient.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"hello", b"World 42"], dtype=np.object_), binary_data=False)
    result = http_client.infer("string_int", [tokens, text])
    np.testing.assert_array_equal(result.as_numpy("tokens_doubled"), [2, -4, 2**41])
    assert list(result.as_numpy("text_upper")) == [b"HELLO", b"WORLD 42"]


def test_empty_tensor(server):
    inputs = json_inputs(fp32={"name": "in_fp32", "shape": [0], "datatype": "FP32", "data": []})
    r = requests.post(server.base + "/v2/models/identity_all_types/infer",
                      data=json.dumps({"inputs": inputs, "outputs": [{"name": "out_fp32"}]}))
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [0] and out["data"] == []
