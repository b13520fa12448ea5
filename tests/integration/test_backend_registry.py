"""The backend registry through a real server: a backend that lives in the test
tree (tests/backends/identity, registered by its one mmserve_backend line)
loads and serves a model through HTTP, in the server and in a worker process;
configs name backends by Triton's backend and platform names, agreeing names
are accepted, and a model naming a backend this server lacks is listed
UNAVAILABLE with the backends it has."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from conftest import EXAMPLES, Server

IDENTITY = "mmserve_test_identity"
IDENTITY_PLATFORM = "mmserve_test_copy"


def write_model(repo: Path, name: str, config: str, files=()):
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\n' + config)
    for f in files:
        (repo / name / "1" / f).write_bytes(b"")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("registry_repo")
    tensors = """
input [ { name: "X" data_type: TYPE_INT32 dims: [ -1 ] },
        { name: "Y" data_type: TYPE_FP32 dims: [ 2, 2 ] } ]
"""
    # Outputs X_OUT and Y_OUT, completed by the backend.
    write_model(repo, "copy", f'backend: "{IDENTITY}"\n' + tensors)
    # Backend and platform both named, agreeing; outputs listed.
    write_model(repo, "copy_named", f'backend: "{IDENTITY}"\nplatform: "{IDENTITY_PLATFORM}"\n'
                + tensors + """
output [ { name: "A" data_type: TYPE_INT32 dims: [ -1 ] },
         { name: "B" data_type: TYPE_FP32 dims: [ 2, 2 ] } ]
""")
    # By platform alone, in a worker process: the worker finds it in its registry.
    write_model(repo, "copy_in_worker", f'platform: "{IDENTITY_PLATFORM}"\n'
                + "mmserve { isolation: PROCESS }\n" + tensors)
    # An ONNX model whose config names both its backend and its platform.
    shutil.copytree(EXAMPLES / "add_sub", repo / "add_sub_named")
    cfg = (EXAMPLES / "add_sub" / "config.pbtxt").read_text()
    cfg = cfg.replace('name: "add_sub"', 'name: "add_sub_named"')
    cfg = cfg.replace('platform: "onnxruntime_onnx"', "")
    (repo / "add_sub_named" / "config.pbtxt").write_text(
        'backend: "onnxruntime"\nplatform: "onnxruntime_onnx"\n' + cfg)
    # A backend this build lacks, and names that contradict.
    write_model(repo, "unknown", 'backend: "tensorflow"\n')
    write_model(repo, "contradiction", f'backend: "onnxruntime"\nplatform: "{IDENTITY_PLATFORM}"\n'
                + tensors)
    return repo


def index(server):
    r = requests.post(f"{server.base}/v2/repository/index", timeout=30)
    assert r.status_code == 200, r.text
    return {e["name"]: e for e in r.json()}


@pytest.fixture(scope="module")
def server(repo):
    s = Server([repo], "--enable-test-backends").start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def test_a_test_tree_backend_serves_through_http(server):
    entries = index(server)
    for name in ("copy", "copy_named", "copy_in_worker", "add_sub_named"):
        assert entries[name]["state"] == "READY", entries[name]
    x = np.array([3, -1, 7], dtype=np.int32)
    y = np.arange(4, dtype=np.float32).reshape(2, 2) / 4
    client = httpclient.InferenceServerClient(server.url)
    try:
        for model, outputs in (("copy", ("X_OUT", "Y_OUT")), ("copy_named", ("A", "B")),
                               ("copy_in_worker", ("X_OUT", "Y_OUT"))):
            inputs = [httpclient.InferInput("X", [3], "INT32"),
                      httpclient.InferInput("Y", [2, 2], "FP32")]
            inputs[0].set_data_from_numpy(x, binary_data=True)
            inputs[1].set_data_from_numpy(y, binary_data=False)
            result = client.infer(model, inputs)
            np.testing.assert_array_equal(result.as_numpy(outputs[0]), x)
            np.testing.assert_array_equal(result.as_numpy(outputs[1]), y)
            # Only the output asked for.
            result = client.infer(model, inputs,
                                  outputs=[httpclient.InferRequestedOutput(outputs[1])])
            assert result.as_numpy(outputs[0]) is None
            np.testing.assert_array_equal(result.as_numpy(outputs[1]), y)
        md = client.get_model_metadata("copy_named")
        assert md["platform"] == IDENTITY_PLATFORM
        config = client.get_model_config("copy")
        assert config["backend"] == IDENTITY
        assert [o["name"] for o in config["output"]] == ["X_OUT", "Y_OUT"]
        # Backend and platform agreeing on an ONNX model.
        a = np.array([1, 2, 3, 4], dtype=np.float32)
        inputs = [httpclient.InferInput("INPUT0", [4], "FP32"),
                  httpclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(a)
        result = client.infer("add_sub_named", inputs)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + a)
    finally:
        client.close()


def test_unknown_and_contradictory_backends_are_unavailable_with_the_reason(server):
    entries = index(server)
    unknown = entries["unknown"]
    assert unknown["state"] == "UNAVAILABLE", unknown
    assert "backend 'tensorflow' is not supported by this server" in unknown["reason"], unknown
    # The backends this server has, test ones included (enabled here).
    assert "onnxruntime (platform onnxruntime_onnx)" in unknown["reason"], unknown
    assert f"{IDENTITY} (platform {IDENTITY_PLATFORM})" in unknown["reason"], unknown
    contradiction = entries["contradiction"]
    assert contradiction["state"] == "UNAVAILABLE", contradiction
    assert "backend 'onnxruntime'" in contradiction["reason"], contradiction
    assert f"platform '{IDENTITY_PLATFORM}'" in contradiction["reason"], contradiction
    assert "contradict" in contradiction["reason"], contradiction


def test_test_backends_need_the_flag(repo):
    s = Server([repo]).start()
    try:
        entries = index(s)
        copy = entries["copy"]
        assert copy["state"] == "UNAVAILABLE", copy
        assert f"backend '{IDENTITY}' is not supported by this server" in copy["reason"], copy
        assert IDENTITY + " (" not in copy["reason"], copy  # not among the backends listed
        assert entries["add_sub_named"]["state"] == "READY", entries["add_sub_named"]
        assert "test backends enabled" not in s.text()
    finally:
        assert s.stop() == 0, s.text()[-5000:]
