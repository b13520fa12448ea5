"""Models the PyTorch backend must refuse, each with a message that names the
model, the file and the reason: a corrupt model.pt, a model.pt from a newer
PyTorch than the server's libtorch, a missing config and a config whose
input count contradicts forward (both saying what forward takes), and a
KIND_GPU instance group on a machine without a GPU. Each reason is read from
the load API (HTTP and gRPC), the repository index and the log; the server
keeps serving its other models throughout.
"""
import os

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

import torch_models as tm
from conftest import Server
from torch_client import Client, assert_bit_identical, index, load, to_numpy, to_torch


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("torch_loading")
    tm.write_corrupt(r)
    tm.write_newer_version(r)
    tm.write_without_config(r)
    tm.write(r, "no_tensors", tm.TwoArgs(), 'name: "no_tensors"\nplatform: "pytorch_libtorch"\n')
    tm.write_wrong_input_count(r, "one_input", count=1)
    tm.write_wrong_input_count(r, "three_inputs", count=3)
    tm.write_kind_gpu(r)
    tm.write_forward_arguments(r, "healthy")
    tm.write_reaching_outside(r)
    for key, spelling in tm.DISGUISED_SAVES.items():
        tm.write_disguised_save(r, f"disguised_{key}", spelling)
    for key, spelling in tm.DISGUISED_FROM_FILES.items():
        tm.write_disguised_from_file(r, f"mapped_{key}", spelling)
    tm.write_upper_case_code(r, "upper_case_code")
    # Hostile files where model.pt should be: a FIFO (a reader would block
    # on it forever), a folder, nothing at all.
    for name in ("fifo", "folder", "missing"):
        tm.write_forward_arguments(r, name)
        (r / name / "1" / "model.pt").unlink()
    os.mkfifo(r / "fifo" / "1" / "model.pt")
    (r / "folder" / "1" / "model.pt").mkdir()
    return r


@pytest.fixture(scope="module")
def server(repo):
    s = Server([repo], "--model-control-mode", "explicit", "--load-model", "healthy").start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def load_error(server, name):
    """The load's error over HTTP, checked to equal gRPC's; also checks that
    the repository index carries it. libtorch's C++ backtraces stay out."""
    r = load(server, name)
    assert r.status_code >= 400, r.text
    http_error = r.json()["error"]
    assert "Exception raised from" not in http_error and "frame #" not in http_error, http_error
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        with pytest.raises(InferenceServerException) as e:
            client.load_model(name)
    finally:
        client.close()
    assert http_error in str(e.value), (http_error, str(e.value))
    entry = index(server)[name]
    assert entry["state"] == "UNAVAILABLE", entry
    assert http_error in entry["reason"] or entry["reason"] in http_error, (entry, http_error)
    return http_error


def assert_logged(server, name, phrase):
    """The log has a line naming the model with the reason's phrase."""
    logged = [line for line in server.log if f"'{name}'" in line and phrase in line]
    assert logged, (name, phrase, server.text()[-3000:])


def still_serving(server):
    x, y = np.ones(4, np.float32), np.full(4, 2.0, np.float32)
    c = Client(server, "http")
    try:
        out = c.infer("healthy", {"x": x, "y": y})["out"]
    finally:
        c.close()
    assert_bit_identical(out, x - np.float32(2.0) * y)


def test_healthy_model_serves(server, repo):
    x, y = np.arange(4, dtype=np.float32), np.full(4, 0.5, np.float32)
    for protocol in ("http", "grpc"):
        c = Client(server, protocol)
        try:
            got = c.infer("healthy", {"x": x, "y": y})["out"]
        finally:
            c.close()
        assert_bit_identical(got, to_numpy(tm.reference(repo, "healthy")(to_torch(x), to_torch(y))))


def test_a_corrupt_model_file(server, repo):
    error = load_error(server, "corrupt")
    assert "'corrupt'" in error, error
    assert str(repo / "corrupt" / "1" / "model.pt") in error or "1/model.pt" in error, error
    assert "PytorchStreamReader failed" in error, error
    assert_logged(server, "corrupt", "PytorchStreamReader failed")
    still_serving(server)


def test_a_model_from_a_newer_pytorch(server, repo):
    # The file itself: torch here refuses it the same way.
    with pytest.raises(RuntimeError, match="version 99"):
        tm.load(repo / "from_the_future" / "1" / "model.pt")
    error = load_error(server, "from_the_future")
    assert "'from_the_future'" in error, error
    assert "1/model.pt" in error, error
    assert "Attempted to read a PyTorch file with version 99" in error, error
    # The hint: the file comes from a newer PyTorch than the server's libtorch.
    assert "newer" in error.lower() and "2.15.0" in error, error
    assert_logged(server, "from_the_future", "version 99")
    still_serving(server)


def test_a_missing_config_says_what_forward_takes(server):
    error = load_error(server, "no_config")
    assert "'no_config'" in error and "config" in error, error
    assert "forward(Tensor x, Tensor y)" in error, error
    assert_logged(server, "no_config", "forward(Tensor x, Tensor y)")
    still_serving(server)


def test_a_config_without_tensors_says_what_forward_takes(server):
    error = load_error(server, "no_tensors")
    assert "'no_tensors'" in error, error
    assert "forward(Tensor x, Tensor y) -> Tensor" in error, error
    assert_logged(server, "no_tensors", "forward(Tensor x, Tensor y) -> Tensor")
    still_serving(server)


@pytest.mark.parametrize("name, count", [("one_input", 1), ("three_inputs", 3)])
def test_a_wrong_input_count_says_what_forward_takes(server, name, count):
    error = load_error(server, name)
    assert f"'{name}'" in error, error
    assert f"configuration expects {count} inputs, model provides 2" in error, error
    assert "forward(Tensor x, Tensor y) -> Tensor" in error, error
    assert_logged(server, name, "forward(Tensor x, Tensor y) -> Tensor")
    still_serving(server)


def test_kind_gpu(server, repo):
    """Refused with a clear message on a machine without a GPU; served on the
    GPU where the server's libtorch has CUDA and a device is visible."""
    r = load(server, "on_gpu")
    if r.status_code == 200:
        assert torch.cuda.is_available(), "KIND_GPU loaded on a machine without a GPU"
        x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
        c = Client(server, "http")
        try:
            got = c.infer("on_gpu", {"INPUT__0": x})["OUTPUT__0"]
        finally:
            c.close()
        want = to_numpy(tm.reference(repo, "on_gpu")(to_torch(x)))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        return
    error = load_error(server, "on_gpu")
    assert "instance_group 'g' asks for KIND_GPU" in error, error
    assert "use KIND_CPU" in error, error
    assert ("no CUDA device is visible" in error
            or "this server's libtorch has no CUDA libraries" in error), error
    assert_logged(server, "on_gpu", "KIND_GPU")
    still_serving(server)


@pytest.mark.parametrize("name, words", [
    ("fifo", ["FIFO", "regular file"]),
    ("folder", ["regular file"]),
    ("missing", []),
])
def test_what_is_not_a_model_file_is_refused_without_blocking(server, name, words):
    error = load_error(server, name)
    assert f"'{name}'" in error and "1/model.pt" in error, error
    for word in words:
        assert word in error, (word, error)
    still_serving(server)


@pytest.mark.parametrize("name, op", [("reads_file", "from_file"),
                                      ("reads_file_nested", "from_file"),
                                      ("saves_file", "save"),
                                      ("saves_at_load", "save")])
def test_a_module_reaching_outside_the_model_is_refused(server, repo, name, op):
    error = load_error(server, name)
    assert f"'{name}'" in error and "1/model.pt" in error, error
    assert op in error and "outside the model" in error, error
    assert not (repo / name / "owned.pt").exists(), "the module wrote a file of the server's"
    still_serving(server)


@pytest.mark.parametrize("key", list(tm.DISGUISED_SAVES))
def test_a_hand_edited_archive_cannot_hide_an_operator(server, repo, key, tmp_path):
    name = f"disguised_{key}"
    # The disguise is real: torch here loads the archive and writes the file.
    probe = tmp_path / "probe"
    tm.write_disguised_save(probe, "probe", tm.DISGUISED_SAVES[key])
    tm.load(probe / "probe" / "1" / "model.pt")
    assert (probe / "probe" / "owned.pt").exists(), "the disguise does not load in torch"
    # The server refuses it before anything of it runs.
    error = load_error(server, name)
    assert f"'{name}'" in error and "outside the model" in error, error
    assert not (repo / name / "owned.pt").exists(), "the module wrote a file of the server's"
    still_serving(server)


@pytest.mark.parametrize("key", list(tm.DISGUISED_FROM_FILES))
def test_a_module_writing_through_from_file_at_load_is_refused_before_it_runs(server, repo, key,
                                                                            tmp_path):
    name = f"mapped_{key}"
    probe = tmp_path / "probe"
    tm.write_disguised_from_file(probe, "probe", tm.DISGUISED_FROM_FILES[key])
    tm.load(probe / "probe" / "1" / "model.pt")
    assert (probe / "probe" / "owned.pt").read_bytes() == b"A" * 16, "torch wrote nothing"
    error = load_error(server, name)
    assert f"'{name}'" in error and "outside the model" in error, error
    assert not (repo / name / "owned.pt").exists(), "the module wrote a file of the server's"
    still_serving(server)


def test_code_records_named_in_upper_case_are_checked_too(server, repo, tmp_path):
    probe = tmp_path / "probe"
    tm.write_upper_case_code(probe, "probe")
    tm.load(probe / "probe" / "1" / "model.pt")
    assert (probe / "probe" / "owned.pt").exists(), "torch did not find the renamed code"
    error = load_error(server, "upper_case_code")
    assert "'upper_case_code'" in error and "outside the model" in error, error
    assert not (repo / "upper_case_code" / "owned.pt").exists(), \
        "the module wrote a file of the server's"
    still_serving(server)
