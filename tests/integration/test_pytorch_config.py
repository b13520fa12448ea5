"""The PyTorch backend's config and its edges through tritonclient HTTP and
gRPC: Triton's parameters (good values serve, a bad value fails the load
naming key and value, an unknown key is a warning), the ways a config names
the backend and the file, KIND_MODEL, outputs that contradict the config
(at load, or per request with the server living on), inputs that arrive
misaligned, and a module that writes into its input (the client's bytes,
here a shared-memory region, must stay as they were).
"""
import os

import numpy as np
import pytest
import requests
import torch
import tritonclient.utils.shared_memory as shm
from torch import Tensor, nn
from tritonclient.utils import InferenceServerException
from typing import Tuple

import torch_models as tm
from conftest import Server, wait_for_log
from torch_client import (PROTOCOLS, Client, assert_bit_identical, index, to_numpy, to_torch)

torch.set_num_threads(1)

GOOD_PARAMETERS = {
    "INFERENCE_MODE": "false",
    "DISABLE_OPTIMIZED_EXECUTION": "TRUE",
    "ENABLE_JIT_EXECUTOR": "on",
    "ENABLE_JIT_PROFILING": "Off",
    "ENABLE_TENSOR_FUSER": "0",
    "DISABLE_CUDNN": "1",
    "ENABLE_CACHE_CLEANING": "true",
    "ENABLE_WEIGHT_SHARING": "true",
    "INTRA_OP_THREAD_COUNT": "2",
    "INTER_OP_THREAD_COUNT": "1",
}


def parameters(values):
    return "".join(f'parameters {{ key: "{k}" value {{ string_value: "{v}" }} }}\n'
                   for k, v in values.items())


class WrongDtype(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.to(torch.int64)


class Scalar(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sum()


class BatchSum(nn.Module):
    """Sums over the batch: its first dimension is 1, not the batch size."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sum(0, keepdim=True)


class Mixed(nn.Module):
    """A UINT8 and an FP64 input: over HTTP's binary extension the FP64 bytes
    follow 3 UINT8 bytes, so they arrive misaligned."""

    def forward(self, small: Tensor, wide: Tensor) -> Tuple[Tensor, Tensor]:
        return small.flip(0), wide * 2.0 + small.to(torch.float64).sum()


class InPlace(nn.Module):
    """Writes into its input (mul_), then returns a fresh tensor."""

    def forward(self, x: Tensor) -> Tensor:
        x.mul_(3.0)
        return x + 1.0


class Forks(nn.Module):
    """Runs half its work on libtorch's inter-op pool (torch.jit.fork)."""

    def double(self, x: Tensor) -> Tensor:
        return x * 2.0

    def forward(self, x: Tensor) -> Tensor:
        future = torch.jit.fork(self.double, x)
        return torch.jit.wait(future) + x


TRITON_STYLE = """name: "triton_style"
platform: "pytorch_libtorch"
max_batch_size: 8
input [
  {
    name: "INPUT__0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 32, 32 ]
  }
]
output [
  {
    name: "OUTPUT__0"
    data_type: TYPE_FP32
    dims: [ 10 ]
    label_filename: "labels.txt"
  }
]
instance_group [
  {
    count: 1
    kind: KIND_CPU
  }
]
"""


class IntArgument(nn.Module):
    def forward(self, x: Tensor, k: int) -> Tensor:
        return x * k


class ReturnsInt(nn.Module):
    def forward(self, x: Tensor) -> int:
        return x.numel()


class Allocates(nn.Module):
    """Allocates as many bytes as its input's first value says."""

    def forward(self, x: Tensor) -> Tensor:
        n = int(x[0].item())
        return torch.ones(n, dtype=torch.uint8)[:4].to(torch.int64) + x


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("torch_config")
    # Every parameter, with values in Triton's spellings; two instances share
    # the module (ENABLE_WEIGHT_SHARING).
    tm.write_mlp(r, "all_parameters", extra=parameters(GOOD_PARAMETERS) +
                 "instance_group [ { count: 2 kind: KIND_CPU } ]\n")
    tm.write_mlp(r, "unknown_parameter", extra=parameters({"NO_SUCH_KEY": "1"}))
    tm.write_mlp(r, "bad_bool", extra=parameters({"INFERENCE_MODE": "maybe"}))
    tm.write_mlp(r, "bad_threads", extra=parameters({"INTRA_OP_THREAD_COUNT": "4x"}))
    # The backend named three ways, and a file of another name.
    for name, head in (("by_backend", 'backend: "pytorch"'),
                       ("by_both", 'platform: "pytorch_libtorch"\nbackend: "pytorch"')):
        tm.write(r, name, tm.TwoArgs(),
                 tm.config(name, [("x", "TYPE_FP32", [4]), ("y", "TYPE_FP32", [4])],
                           [("out", "TYPE_FP32", [4])]).replace('platform: "pytorch_libtorch"',
                                                                head))
    tm.write(r, "custom_file", tm.TwoArgs(),
             tm.config("custom_file", [("x", "TYPE_FP32", [4]), ("y", "TYPE_FP32", [4])],
                       [("out", "TYPE_FP32", [4])], extra='default_model_filename: "net.pt"\n'),
             filename="net.pt")
    tm.write_mlp(r, "kind_model", extra="instance_group [ { count: 1 kind: KIND_MODEL } ]\n")
    # Outputs that contradict the config.
    tm.write(r, "too_many_outputs", tm.TwoArgsTwoOutputs(),
             tm.config("too_many_outputs", [("a", "TYPE_FP32", [4]), ("b", "TYPE_FP32", [4])],
                       [("first", "TYPE_FP32", [4]), ("second", "TYPE_FP32", [4]),
                        ("third", "TYPE_FP32", [4])]))
    tm.write(r, "string_for_tensor", tm.TwoArgs(),
             tm.config("string_for_tensor", [("x", "TYPE_STRING", [-1]), ("y", "TYPE_FP32", [4])],
                       [("out", "TYPE_FP32", [4])]))
    tm.write(r, "wrong_dtype", WrongDtype(),
             tm.config("wrong_dtype", [("x", "TYPE_FP32", [-1])], [("y", "TYPE_FP32", [-1])]))
    tm.write(r, "scalar", Scalar(),
             tm.config("scalar", [("x", "TYPE_FP32", [-1])], [("y", "TYPE_FP32", [1])]))
    tm.write(r, "batch_sum", BatchSum(),
             tm.config("batch_sum", [("x", "TYPE_FP32", [4])], [("y", "TYPE_FP32", [4])],
                       max_batch_size=8))
    # Signatures and names the backend cannot map.
    two = [("x", "TYPE_FP32", [4]), ("k", "TYPE_INT64", [1])]
    tm.write(r, "int_argument", IntArgument(),
             tm.config("int_argument", two, [("y", "TYPE_FP32", [4])]))
    tm.write(r, "returns_int", ReturnsInt(),
             tm.config("returns_int", [("x", "TYPE_FP32", [4])], [("n", "TYPE_INT64", [1])]))
    tm.write(r, "index_twice", tm.TwoArgs(),
             tm.config("index_twice", [("A__0", "TYPE_FP32", [4]), ("B__0", "TYPE_FP32", [4])],
                       [("out", "TYPE_FP32", [4])]))
    tm.write(r, "index_too_big", tm.TwoArgs(),
             tm.config("index_too_big", [("A__0", "TYPE_FP32", [4]), ("B__5", "TYPE_FP32", [4])],
                       [("out", "TYPE_FP32", [4])]))
    # A config as Triton's documentation writes one (format, label_filename).
    tm.write_cnn(r, "triton_style")
    (r / "triton_style" / "config.pbtxt").write_text(TRITON_STYLE)
    (r / "triton_style" / "labels.txt").write_text("".join(f"class {i}\n" for i in range(10)))
    # Inputs.
    tm.write(r, "mixed", Mixed(),
             tm.config("mixed", [("small", "TYPE_UINT8", [-1]), ("wide", "TYPE_FP64", [4])],
                       [("OUTPUT__0", "TYPE_UINT8", [-1]), ("OUTPUT__1", "TYPE_FP64", [4])]))
    tm.write(r, "in_place", InPlace(),
             tm.config("in_place", [("x", "TYPE_FP32", [4])], [("y", "TYPE_FP32", [4])]))
    return r


@pytest.fixture(scope="module")
def server(repo):
    s = Server([repo]).start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


@pytest.fixture(params=PROTOCOLS)
def client(request, server):
    c = Client(server, request.param)
    yield c
    c.close()


READY = ["all_parameters", "unknown_parameter", "by_backend", "by_both", "custom_file",
         "kind_model", "wrong_dtype", "scalar", "batch_sum", "mixed", "in_place", "triton_style"]


def test_which_models_load(server):
    idx = index(server)
    for name in READY:
        assert idx[name]["state"] == "READY", idx[name]
    for name in ("bad_bool", "bad_threads", "too_many_outputs", "string_for_tensor"):
        assert idx[name]["state"] == "UNAVAILABLE", idx[name]


# ---------------------------------------------------------------- parameters


def test_every_parameter_in_tritons_spellings(server, repo, client):
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    got = client.infer("all_parameters", {"INPUT__0": x})["OUTPUT__0"]
    want = to_numpy(tm.reference(repo, "all_parameters")(to_torch(x)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_a_bad_parameter_value_fails_the_load_naming_key_and_value(server):
    idx = index(server)
    reason = idx["bad_bool"]["reason"]
    assert "'bad_bool'" in reason and "INFERENCE_MODE" in reason and "'maybe'" in reason, reason
    reason = idx["bad_threads"]["reason"]
    assert "INTRA_OP_THREAD_COUNT" in reason and "'4x'" in reason, reason


def test_an_unknown_parameter_is_a_warning_listing_the_known_ones(server, repo, client):
    warned = [line for line in server.log if "'unknown_parameter'" in line
              and "NO_SUCH_KEY" in line]
    assert warned, server.text()[-3000:]
    for key in GOOD_PARAMETERS:
        assert key in warned[0], (key, warned[0])
    x = np.ones((1, 16), np.float32)
    np.testing.assert_allclose(client.infer("unknown_parameter", {"INPUT__0": x})["OUTPUT__0"],
                               to_numpy(tm.reference(repo, "unknown_parameter")(to_torch(x))),
                               rtol=1e-5, atol=1e-7)


# ------------------------------------------------------- naming the backend


@pytest.mark.parametrize("name, filename", [("by_backend", "model.pt"), ("by_both", "model.pt"),
                                            ("custom_file", "net.pt")])
def test_the_backend_by_name_platform_or_both_and_a_custom_file(repo, client, name, filename):
    x, y = np.arange(4, dtype=np.float32), np.full(4, 3.0, np.float32)
    got = client.infer(name, {"x": x, "y": y})["out"]
    want = tm.reference(repo, name, filename=filename)(to_torch(x), to_torch(y))
    assert_bit_identical(got, to_numpy(want))


def test_a_config_as_tritons_documentation_writes_it(repo, client):
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    got = client.infer("triton_style", {"INPUT__0": x})["OUTPUT__0"]
    np.testing.assert_allclose(got, to_numpy(tm.reference(repo, "triton_style")(to_torch(x))),
                               rtol=1e-5, atol=1e-6)


def test_kind_model_serves_where_the_module_was_saved(repo, client):
    x = np.random.default_rng(2).standard_normal((2, 16)).astype(np.float32)
    got = client.infer("kind_model", {"INPUT__0": x})["OUTPUT__0"]
    np.testing.assert_allclose(got, to_numpy(tm.reference(repo, "kind_model")(to_torch(x))),
                               rtol=1e-5, atol=1e-7)


# ------------------------------------------------------ contradicting outputs


def test_load_errors_for_outputs_and_inputs_forward_cannot_give(server):
    idx = index(server)
    reason = idx["too_many_outputs"]["reason"]
    assert "configuration expects 3 outputs, model provides 2" in reason, reason
    assert "forward(Tensor a, Tensor b)" in reason, reason
    reason = idx["string_for_tensor"]["reason"]
    assert "'x'" in reason and "TYPE_STRING" in reason and "forward(" in reason, reason


@pytest.mark.parametrize("model, words", [
    ("int_argument", ["'k'", "int", "forward(Tensor x, int k) -> Tensor"]),
    ("returns_int", ["forward(Tensor x) -> int"]),
    ("index_twice", ["'B__0'", "index 0", "another input"]),
    ("index_too_big", ["'B__5'", "index 5", "forward(Tensor x, Tensor y) -> Tensor"]),
])
def test_signatures_and_names_the_backend_cannot_map(server, model, words):
    entry = index(server)[model]
    assert entry["state"] == "UNAVAILABLE", entry
    assert f"'{model}'" in entry["reason"], entry
    for word in words:
        assert word in entry["reason"], (word, entry["reason"])


@pytest.mark.parametrize("model, x, words", [
    ("wrong_dtype", np.ones(3, np.float32),
     ["output 'y'", "configuration expects datatype TYPE_FP32", "INT64"]),
    ("scalar", np.ones(3, np.float32), ["output 'y'", "scalar"]),
    ("batch_sum", np.ones((2, 4), np.float32), ["output 'y'", "batch size", "2"]),
])
def test_an_output_that_contradicts_the_config_fails_each_request(server, client, model, x, words):
    for _ in range(2):  # and again: nothing is left broken
        with pytest.raises(InferenceServerException) as e:
            client.infer(model, {"x": x})
        message = str(e.value)
        assert f"model '{model}'" in message, message
        for word in words:
            assert word in message, (word, message)
    assert requests.get(server.base + "/v2/health/live", timeout=30).status_code == 200


def test_batch_sum_serves_a_batch_of_one(client):
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    assert_bit_identical(client.infer("batch_sum", {"x": x})["y"], x)


# ------------------------------------------------------------------- inputs


def test_misaligned_inputs(repo, client):
    # 1 to 8 UINT8 values before the FP64 ones: whatever the offset of the
    # first, the FP64 bytes are misaligned for most sizes.
    wide = np.array([1.5, -2.25, 1e300, -0.0], np.float64)
    module = tm.reference(repo, "mixed")
    for n in range(1, 9):
        small = np.arange(250, 250 - n, -1).astype(np.uint8)
        got = client.infer("mixed", {"small": small, "wide": wide})
        want = module(to_torch(small), to_torch(wide))
        assert_bit_identical(got["OUTPUT__0"], to_numpy(want[0]), n)
        assert_bit_identical(got["OUTPUT__1"], to_numpy(want[1]), n)
        assert_bit_identical(got["OUTPUT__0"], small[::-1], n)


def test_a_module_writing_its_input_never_writes_the_clients_bytes(repo, server, client):
    x = np.array([1.0, 2.0, -3.0, 0.5], np.float32)
    want = to_numpy(tm.reference(repo, "in_place")(to_torch(x)))
    assert_bit_identical(want, x * np.float32(3.0) + np.float32(1.0))
    # Inline bytes: the answer is the module's.
    assert_bit_identical(client.infer("in_place", {"x": x})["y"], want)
    # Bytes in the client's shared-memory region: unchanged after the call.
    key = f"/mmserve_torch_{os.getpid()}_{client.protocol}"
    handle = shm.create_shared_memory_region("torch_in", key, 16)
    try:
        shm.set_shared_memory_region(handle, [x])
        client.client.register_system_shared_memory("torch_in", key, 16)
        inp = client.module.InferInput("x", [4], "FP32")
        inp.set_shared_memory("torch_in", 16)
        for _ in range(2):
            result = client.client.infer("in_place", [inp])
            assert_bit_identical(result.as_numpy("y"), want)
        assert_bit_identical(shm.get_contents_as_numpy(handle, np.float32, [4]), x)
    finally:
        client.client.unregister_system_shared_memory("torch_in")
        shm.destroy_shared_memory_region(handle)


# ------------------------------------------------------ process-wide settings


def test_inter_op_threads_are_set_once_per_process(tmp_path):
    for name, threads in (("inter3", "3"), ("inter5", "5")):
        tm.write(tmp_path, name, Forks(),
                 tm.config(name, [("x", "TYPE_FP32", [-1])], [("y", "TYPE_FP32", [-1])],
                           extra=parameters({"INTER_OP_THREAD_COUNT": threads})))
    s = Server([tmp_path], "--model-control-mode", "explicit").start()
    try:
        assert requests.post(f"{s.base}/v2/repository/models/inter3/load",
                             timeout=300).status_code == 200
        assert requests.post(f"{s.base}/v2/repository/models/inter5/load",
                             timeout=300).status_code == 200
        # The first model's value holds; the second is told which is in force.
        # (The log is read by a thread: the answer to the load can come first.)
        wait_for_log(s, "INTER_OP_THREAD_COUNT 5 is ignored")
        assert any("'inter3'" in line and "inter-op threads set to 3" in line for line in s.log), \
            s.text()[-3000:]
        assert any("'inter5'" in line and "INTER_OP_THREAD_COUNT 5 is ignored" in line
                   and "3 is in force" in line for line in s.log), s.text()[-3000:]
        x = np.array([1.0, -2.0, 0.5], np.float32)
        for protocol in PROTOCOLS:
            c = Client(s, protocol)
            try:
                for name in ("inter3", "inter5"):
                    want = to_numpy(tm.reference(tmp_path, name)(to_torch(x)))
                    assert_bit_identical(c.infer(name, {"x": x})["y"], want)
                    assert_bit_identical(want, x * np.float32(3.0))
            finally:
                c.close()
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def test_a_module_asking_for_16_tib_fails_its_request_and_the_server_lives(tmp_path, monkeypatch):
    # The sanitizer build aborts on an impossible allocation unless told to
    # fail it as the release build's allocator does.
    monkeypatch.setenv("ASAN_OPTIONS", "allocator_may_return_null=1")
    tm.write(tmp_path, "allocates", Allocates(),
             tm.config("allocates", [("x", "TYPE_INT64", [4])], [("y", "TYPE_INT64", [4])]))
    s = Server([tmp_path]).start()
    try:
        for protocol in PROTOCOLS:
            c = Client(s, protocol)
            try:
                small = np.array([8, 0, 5, 0], np.int64)
                assert_bit_identical(c.infer("allocates", {"x": small})["y"], small + 1)
                with pytest.raises(InferenceServerException) as e:
                    c.infer("allocates", {"x": np.array([2**44, 0, 0, 0], np.int64)})
                message = str(e.value)
                assert "model 'allocates'" in message and "can't allocate memory" in message, \
                    message
                assert_bit_identical(c.infer("allocates", {"x": small})["y"], small + 1)
            finally:
                c.close()
    finally:
        assert s.stop() == 0, s.text()[-5000:]
