"""The PyTorch (TorchScript) backend's inputs and outputs through tritonclient
HTTP and gRPC: Triton's naming conventions (forward argument names,
`<name>__<index>`, config order), a Dict input, tuple / list / dict outputs
and requested subsets of them, every dtype (bit-exact), BYTES as List[str],
a module that raises, and the example CNN of examples/models.

Every answer is checked against torch run in this process on the same inputs:
the module the generator scripted, or the model.pt the server read, loaded
with torch.jit.load. Element-wise float compute is the same libtorch code on
both sides, so it is compared exactly; the CNN and MLP (BLAS kernels, which
may block a matrix product differently) within a tight tolerance.
"""
import ml_dtypes
import numpy as np
import pytest
import requests
import torch
from tritonclient.utils import InferenceServerException

import torch_models as tm
from conftest import EXAMPLES, Server
from torch_client import PROTOCOLS, Client, assert_bit_identical, index, to_numpy, to_torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("torch_io")
    tm.write_forward_arguments(r)
    tm.write_named_index(r)
    tm.write_config_order(r)
    tm.write_config_order(r, "config_order_warn", names=("first__a", "second__b"),
                          out_names=("difference__x", "product__y"))
    tm.write_dict_input(r)
    tm.write_list_output(r)
    tm.write_dict_output(r)
    tm.write_strings(r)
    for dtype in tm.DTYPES:
        tm.write_dtype_identity(r, dtype)
    tm.write_int_arithmetic(r)
    tm.write_mlp(r)
    tm.write_traced_mlp(r)
    tm.write_cnn(r)
    tm.write_raiser(r)
    tm.write_long_raiser(r)
    return r


@pytest.fixture(scope="module")
def torch_server(repo):
    s = Server([repo]).start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


@pytest.fixture(params=PROTOCOLS)
def client(request, torch_server):
    c = Client(torch_server, request.param)
    yield c
    c.close()


def rand(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_every_model_is_ready(torch_server):
    idx = index(torch_server)
    not_ready = {n: e.get("reason") for n, e in idx.items() if e["state"] != "READY"}
    assert not not_ready, not_ready


# ---------------------------------------------------------------- naming


def test_inputs_by_forward_argument_names(repo, client):
    x, y = rand([4], 1), rand([4], 2)
    got = client.infer("forward_args", {"y": y, "x": x})
    want = tm.reference(repo, "forward_args")(to_torch(x), to_torch(y))
    assert_bit_identical(got["out"], to_numpy(want))
    assert_bit_identical(got["out"], x - np.float32(2.0) * y)


def test_inputs_and_outputs_by_name_and_index(repo, client):
    a, b = rand([4], 3), rand([4], 4)
    got = client.infer("named_index", {"INPUT__1": b, "INPUT__0": a})
    want = tm.reference(repo, "named_index")(to_torch(a), to_torch(b))
    assert set(got) == {"OUTPUT__0", "OUTPUT__1"}
    assert_bit_identical(got["OUTPUT__0"], to_numpy(want[0]))
    assert_bit_identical(got["OUTPUT__1"], to_numpy(want[1]))
    assert_bit_identical(got["OUTPUT__0"], a - b)


@pytest.mark.parametrize("model, names, outs", [
    ("config_order", ("first", "second"), ("difference", "product_plus_one")),
    ("config_order_warn", ("first__a", "second__b"), ("difference__x", "product__y")),
])
def test_config_order_when_names_follow_no_convention(repo, client, torch_server, model, names,
                                                      outs):
    a, b = rand([4], 5), rand([4], 6)
    got = client.infer(model, {names[1]: b, names[0]: a})
    want = tm.reference(repo, model)(to_torch(a), to_torch(b))
    assert_bit_identical(got[outs[0]], to_numpy(want[0]))
    assert_bit_identical(got[outs[1]], to_numpy(want[1]))
    assert_bit_identical(got[outs[0]], a - b)
    if model == "config_order_warn":
        # `__` with a suffix that is not an index: a warning naming the model
        # says the config's order applies (Triton: "Falling back to enforcing
        # strict ordering from model configuration"), for inputs and outputs.
        warned = [line for line in torch_server.log if "'config_order_warn'" in line
                  and "falling back" in line.lower() and "[warn" in line]
        assert len(warned) >= 2, torch_server.text()[-3000:]


def test_dict_input(repo, client):
    alpha, beta = rand([5], 7), rand([5], 8)
    got = client.infer("dict_input", {"beta": beta, "alpha": alpha})
    want = tm.reference(repo, "dict_input")({"alpha": to_torch(alpha), "beta": to_torch(beta)})
    assert_bit_identical(got["OUTPUT__0"], to_numpy(want))
    assert_bit_identical(got["OUTPUT__0"], alpha * np.float32(2.0) - beta)


def test_list_output(repo, client):
    x = rand([6], 9)
    got = client.infer("list_output", {"INPUT__0": x})
    want = tm.reference(repo, "list_output")(to_torch(x))
    assert set(got) == {"plus__0", "times__1", "neg__2"}
    for name, i in (("plus__0", 0), ("times__1", 1), ("neg__2", 2)):
        assert_bit_identical(got[name], to_numpy(want[i]), name)
    assert_bit_identical(got["neg__2"], -x)


def test_dict_output_matched_by_key(repo, client):
    x, y = rand([3], 10), rand([3], 11)
    got = client.infer("dict_output", {"x": x, "y": y})
    want = tm.reference(repo, "dict_output")(to_torch(x), to_torch(y))
    assert set(got) == {"sum", "difference", "product"}
    for key in ("sum", "difference", "product"):
        assert_bit_identical(got[key], to_numpy(want[key]), key)
    assert_bit_identical(got["difference"], x - y)


@pytest.mark.parametrize("model, inputs, wanted", [
    ("dict_output", ("x", "y"), ["difference"]),
    ("dict_output", ("x", "y"), ["product", "sum"]),
    ("named_index", ("INPUT__0", "INPUT__1"), ["OUTPUT__1"]),
    ("list_output", ("INPUT__0",), ["neg__2", "plus__0"]),
])
def test_requested_outputs_are_the_only_ones_sent(repo, client, model, inputs, wanted):
    arrays = {name: rand([4], 20 + i) for i, name in enumerate(inputs)}
    got = client.infer(model, arrays, outputs=wanted)
    assert set(got) == set(wanted)
    full = client.infer(model, arrays)
    for name in wanted:
        assert_bit_identical(got[name], full[name], name)


# ---------------------------------------------------------------- dtypes


def dtype_values(dtype, shape=(3, 5), seed=0):
    """Values covering the dtype's range: random bit patterns for floats
    (NaN payloads, infinities, subnormals, -0.0 included on purpose)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dtype == "BOOL":
        return (rng.integers(0, 2, n) == 1).reshape(shape)
    np_type = tm.DTYPES[dtype][2]
    if dtype in ("FP16", "BF16", "FP32", "FP64"):
        size = {"FP16": 2, "BF16": 2, "FP32": 4, "FP64": 8}[dtype]
        uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[size]
        raw = rng.integers(0, np.iinfo(uint).max, n, dtype=uint, endpoint=True)
        sign = 1 << (8 * size - 1)
        exp_mask = {"FP16": 0x7C00, "BF16": 0x7F80, "FP32": 0x7F800000,
                    "FP64": 0x7FF0000000000000}[dtype]
        raw[0] = 0                      # +0.0
        raw[1] = sign                   # -0.0
        raw[2] = exp_mask               # +inf
        raw[3] = exp_mask | sign        # -inf
        raw[4] = exp_mask | 1           # signalling NaN with a payload
        raw[5] = exp_mask | ((exp_mask & -exp_mask) >> 1) | 3  # quiet NaN, payload
        raw[6] = 1                      # smallest subnormal
        view = ml_dtypes.bfloat16 if dtype == "BF16" else np_type
        return raw.view(view).reshape(shape)
    info = np.iinfo(np_type)
    values = rng.integers(info.min, info.max, n, dtype=np_type, endpoint=True)
    values[0], values[1] = info.min, info.max
    return values.reshape(shape)


@pytest.mark.parametrize("dtype", list(tm.DTYPES))
def test_every_dtype_round_trips_bit_exactly(repo, client, dtype):
    x = dtype_values(dtype, seed=len(dtype))
    got = client.infer(tm.dtype_model_name(dtype), {"INPUT__0": x})
    want = tm.reference(repo, tm.dtype_model_name(dtype))(to_torch(x))
    assert_bit_identical(got["OUTPUT__0"], x, "OUTPUT__0 (the input itself)")
    assert_bit_identical(got["OUTPUT__1"], x.T, "OUTPUT__1 (a transposed view)")
    assert_bit_identical(got["OUTPUT__2"], x[::-1], "OUTPUT__2 (rows flipped)")
    for i in range(3):
        assert_bit_identical(got[f"OUTPUT__{i}"], to_numpy(want[i]), f"OUTPUT__{i} vs torch")


@pytest.mark.parametrize("shape", [(0, 3), (3, 0)])
def test_empty_tensors(repo, client, shape):
    x = np.zeros(shape, np.float32)
    got = client.infer("identity_fp32", {"INPUT__0": x})
    assert_bit_identical(got["OUTPUT__0"], x)
    assert_bit_identical(got["OUTPUT__1"], x.T)
    assert_bit_identical(got["OUTPUT__2"], x[::-1])


def test_integer_and_boolean_compute(repo, client):
    rng = np.random.default_rng(30)
    a = rng.integers(-(2**31), 2**31, 64, dtype=np.int32)
    b = rng.integers(-(2**31), 2**31, 64, dtype=np.int32)
    got = client.infer("int_arithmetic", {"a": a, "b": b})
    want = tm.reference(repo, "int_arithmetic")(to_torch(a), to_torch(b))
    for i in range(3):
        assert_bit_identical(got[f"OUTPUT__{i}"], to_numpy(want[i]), i)
    assert_bit_identical(got["OUTPUT__1"], a > b)
    with np.errstate(over="ignore"):
        assert_bit_identical(got["OUTPUT__0"], a * np.int32(3) - b)  # wraps as torch does


def test_bytes_as_lists_of_strings(repo, client):
    words = ["hello", "ünïcödé", "", "with\x00nul", "x" * 1000]
    array = np.array([w.encode() for w in words], dtype=np.object_)
    got = client.infer("strings", {"words": array})
    shout, lengths = tm.reference(repo, "strings")(words)
    assert list(got["shout__0"]) == [s.encode() for s in shout]
    assert got["shout__0"].shape == (len(words),)
    assert_bit_identical(got["lengths__1"], to_numpy(lengths))
    assert got["lengths__1"].tolist() == [len(w.encode()) for w in words]


# ------------------------------------------------------------ compute models


def test_mlp_matches_torch(repo, client):
    x = rand([5, 16], 40)
    got = client.infer("mlp", {"INPUT__0": x})["OUTPUT__0"]
    want = to_numpy(tm.reference(repo, "mlp")(to_torch(x)))
    assert got.shape == (5, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_a_traced_module_matches_torch(repo, client):
    x = rand([3, 16], 43)
    got = client.infer("traced_mlp", {"INPUT__0": x})["OUTPUT__0"]
    want = to_numpy(tm.reference(repo, "traced_mlp")(to_torch(x)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_cnn_matches_torch(repo, client):
    x = rand([3, 3, 32, 32], 41)
    got = client.infer("cnn", {"INPUT__0": x})["OUTPUT__0"]
    want = to_numpy(tm.reference(repo, "cnn")(to_torch(x)))
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(params=PROTOCOLS)
def examples_client(request, server):
    """A client of the conftest's shared server of examples/models."""
    c = Client(server, request.param)
    yield c
    c.close()


def test_example_cnn_serves_from_examples(examples_client):
    """examples/models/image_cnn_torch, as committed."""
    meta = examples_client.client.get_model_metadata("image_cnn_torch")
    if examples_client.protocol == "grpc":
        meta = {"platform": meta.platform,
                "inputs": [{"name": i.name, "datatype": i.datatype, "shape": list(i.shape)}
                           for i in meta.inputs]}
    assert meta["platform"] == "pytorch_libtorch"
    assert meta["inputs"] == [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    x = rand([2, 3, 32, 32], 42)
    module = tm.load(EXAMPLES / "image_cnn_torch" / "1" / "model.pt")
    want = to_numpy(module(to_torch(x)))
    got = examples_client.infer("image_cnn_torch", {"INPUT__0": x})["OUTPUT__0"]
    assert got.shape == (2, 10)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ a module that raises


def test_a_module_that_raises_fails_only_that_request(repo, client, torch_server):
    good = np.arange(1, 5, dtype=np.float32)
    bad = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    assert_bit_identical(client.infer("raiser", {"INPUT__0": good})["OUTPUT__0"],
                         good * np.float32(2.0))
    with pytest.raises(InferenceServerException) as e:
        client.infer("raiser", {"INPUT__0": bad})
    message = str(e.value)
    assert "model 'raiser'" in message, message
    assert tm.RAISE_MESSAGE in message, message
    assert "PyTorch execute failure" in message, message
    assert len(message) < 4096, f"{len(message)} characters"
    # The same failure in torch here, for the record: the module raised.
    with pytest.raises(torch.jit.Error, match="x holds a negative value"):
        tm.reference(repo, "raiser")(to_torch(bad))
    # The server lives on, and the next request succeeds.
    assert requests.get(torch_server.base + "/v2/health/live", timeout=30).status_code == 200
    assert_bit_identical(client.infer("raiser", {"INPUT__0": good})["OUTPUT__0"],
                         good * np.float32(2.0))


def test_a_raise_is_an_internal_error_over_http(torch_server):
    server = torch_server
    body = {"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [2], "data": [-1, 1]}]}
    r = requests.post(server.base + "/v2/models/raiser/infer", json=body, timeout=60)
    assert r.status_code == 500, r.text
    assert tm.RAISE_MESSAGE in r.json()["error"]
    body["inputs"][0]["data"] = [1, 1]
    r = requests.post(server.base + "/v2/models/raiser/infer", json=body, timeout=60)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [2.0, 2.0], r.text


def test_a_long_raise_is_bounded_for_the_client_and_whole_in_the_log(client, torch_server):
    with pytest.raises(InferenceServerException) as e:
        client.infer("long_raiser", {"INPUT__0": np.ones(2, np.float32)})
    message = str(e.value)
    assert "model 'long_raiser'" in message and "ValueError: begin yyyy" in message, message[:500]
    assert len(message) < 4096, f"{len(message)} characters"
    whole = "begin " + "y" * 6000 + " end"
    assert any(whole in line for line in torch_server.log), "the log lacks the whole message"
