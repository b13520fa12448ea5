"""The Python backend through a real server: Triton model.py files, written as
Triton's documentation writes them, served unchanged, driven by tritonclient
over HTTP and gRPC. Every model runs in a worker process (`mmserve --worker`)."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import Server, binary
from python_models import ADD_SUB, add_sub_config, write_model

BYTES_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            assert text.dtype == np.object_, text.dtype
            upper = np.array([t.upper() for t in text.reshape(-1)], dtype=np.object_)
            lengths = np.array([len(t) for t in text.reshape(-1)], dtype=np.int32)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("UPPER", upper.reshape(text.shape)),
                pb_utils.Tensor("LENGTH", lengths.reshape(text.shape)),
            ]))
        return responses
"""

BYTES_CONFIG = """
name: "bytes_model"
backend: "python"
input [{ name: "TEXT" data_type: TYPE_STRING dims: [ -1 ] }]
output [
  { name: "UPPER" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "LENGTH" data_type: TYPE_INT32 dims: [ -1 ] }
]
"""

# No config.pbtxt: the model describes itself (Triton's auto_complete_config).
AUTO_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        inputs = [{"name": "X", "data_type": "TYPE_FP32", "dims": [2]}]
        outputs = [{"name": "Y", "data_type": "TYPE_FP32", "dims": [2]}]
        config = auto_complete_model_config.as_dict()
        input_names = [i["name"] for i in config["input"]]
        output_names = [o["name"] for o in config["output"]]
        for input in inputs:
            if input["name"] not in input_names:
                auto_complete_model_config.add_input(input)
        for output in outputs:
            if output["name"] not in output_names:
                auto_complete_model_config.add_output(output)
        auto_complete_model_config.set_max_batch_size(8)
        auto_complete_model_config.set_dynamic_batching()
        return auto_complete_model_config

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x * 2)]))
        return responses
"""

ARGS_MODEL = """
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.args = dict(args)

    def execute(self, requests):
        responses = []
        for request in requests:
            seen = {
                "args": self.args,
                "request_id": request.request_id(),
                "parameters": json.loads(request.parameters()),
                "requested": request.requested_output_names(),
                "input_names": [t.name() for t in request.inputs()],
                "shape": pb_utils.get_input_tensor_by_name(request, "IN").shape(),
                "is_cpu": pb_utils.get_input_tensor_by_name(request, "IN").is_cpu(),
            }
            out = np.array([json.dumps(seen).encode()], dtype=np.object_)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", out)]))
        return responses
"""

ARGS_CONFIG = """
name: "args_model"
backend: "python"
input [{ name: "IN" data_type: TYPE_INT64 dims: [ 3 ] }]
output [{ name: "OUT" data_type: TYPE_STRING dims: [ 1 ] }]
"""

LOGGER_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        logger = pb_utils.Logger
        logger.log_info("logger-info-line")
        logger.log_warn("logger-warn-line")
        logger.log_error("logger-error-line")
        logger.log("logger-specific-line", logger.WARNING)

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]) for r in requests]
"""

IDENTITY_CONFIG = """
name: "{name}"
backend: "python"
input [{{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }}]
output [{{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }}]
"""

# One model, many ways to answer wrongly, chosen by the request's first value.
MISBEHAVING_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


def helper(value):
    return 1 / value


class TritonPythonModel:
    def execute(self, requests):
        x = pb_utils.get_input_tensor_by_name(requests[0], "IN").as_numpy()
        mode = int(x[0])
        good = pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x)])
        if mode == 1:
            helper(0)  # ZeroDivisionError
        if mode == 2:
            return [good, good]
        if mode == 3:
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(
                "the input is out of range", pb_utils.TritonError.INVALID_ARG))]
        if mode == 4:
            return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x.astype(np.int32))])]
        if mode == 5:
            return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x.reshape(1, -1))])]
        if mode == 6:
            return [pb_utils.InferenceResponse([])]
        if mode == 7:
            raise pb_utils.TritonModelException("model-raised-this")
        if mode == 8:
            r = pb_utils.InferenceRequest(model_name="no_such_model_here",
                                          requested_output_names=["OUTPUT0"],
                                          inputs=[pb_utils.Tensor("INPUT0", x)]).exec()
            raise pb_utils.TritonModelException("BLS: " + r.error().message())
        if mode == 9:
            sender = requests[0].get_response_sender()
            sender.send(good, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return None
        if mode == 10:
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError("plain error"))]
        if mode == 11:
            return None
        if mode == 12:
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(
                "busy now", pb_utils.TritonError.UNAVAILABLE))]
        return [good]
"""

SYNTAX_ERROR_MODEL = """
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests)
        return []
"""

INIT_ERROR_MODEL = """
import triton_python_backend_utils as pb_utils


def check(args):
    raise RuntimeError("initialize-failed-on-purpose for " + args["model_name"])


class TritonPythonModel:
    def initialize(self, args):
        check(args)

    def execute(self, requests):
        return []
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("python_repo")
    write_model(repo, "add_sub", ADD_SUB, add_sub_config("add_sub"))
    write_model(repo, "bytes_model", BYTES_MODEL, BYTES_CONFIG)
    write_model(repo, "auto_model", AUTO_MODEL)
    write_model(repo, "args_model", ARGS_MODEL, ARGS_CONFIG, version=3)
    write_model(repo, "logger_model", LOGGER_MODEL, IDENTITY_CONFIG.format(name="logger_model"))
    write_model(repo, "misbehaving", MISBEHAVING_MODEL, IDENTITY_CONFIG.format(name="misbehaving"))
    # default_model_filename: a model file with another name.
    write_model(repo, "renamed", ADD_SUB,
                add_sub_config("renamed", extra='default_model_filename: "add_sub.py"'),
                filename="add_sub.py")
    write_model(repo, "syntax_error", SYNTAX_ERROR_MODEL, IDENTITY_CONFIG.format(name="syntax_error"))
    write_model(repo, "init_error", INIT_ERROR_MODEL, IDENTITY_CONFIG.format(name="init_error"))
    return repo


GOOD_MODELS = ["add_sub", "bytes_model", "auto_model", "args_model", "logger_model",
               "misbehaving", "renamed"]


@pytest.fixture(scope="module")
def server(repo):
    s = Server([repo], "--model-control-mode", "explicit",
               *[a for m in GOOD_MODELS for a in ("--load-model", m)]).start()
    yield s
    code = s.stop()
    assert code == 0, f"mmserve exited with {code}:\n{s.text()[-5000:]}"


def http(server):
    return httpclient.InferenceServerClient(server.url)


def grpc(server):
    return grpcclient.InferenceServerClient(server.grpc_url)


def add_sub_inputs(module, a, b):
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return inputs


@pytest.mark.parametrize("model", ["add_sub", "renamed"])
@pytest.mark.parametrize("module,client", [(httpclient, http), (grpcclient, grpc)])
def test_add_sub(server, model, module, client):
    a = np.array([1, 2, 3, 4], dtype=np.float32)
    b = np.array([0.5, 1, 1.5, 2], dtype=np.float32)
    c = client(server)
    result = c.infer(model, add_sub_inputs(module, a, b))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    # Only the requested output comes back.
    result = c.infer(model, add_sub_inputs(module, a, b),
                     outputs=[module.InferRequestedOutput("OUTPUT1")])
    assert result.as_numpy("OUTPUT0") is None
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


def test_models_run_in_worker_processes(server):
    pids = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    workers = []
    for p in pids:
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == server.proc.pid and b"--worker" in cmd:
            workers.append((cmd, os.readlink(p / "exe")))
    names = sorted(c[2].decode() for c, _ in workers if len(c) > 2)
    assert names == sorted(GOOD_MODELS), names
    # Each runs the Python worker program built beside the server (CPython's
    # static library: faster than the shared one mmserve links).
    beside = Path(os.path.realpath(binary())).parent / "mmserve-python-worker"
    assert beside.exists(), beside
    assert {exe for _, exe in workers} == {str(beside)}, workers


@pytest.mark.parametrize("module,client", [(httpclient, http), (grpcclient, grpc)])
def test_bytes_tensors_are_object_arrays_both_ways(server, module, client):
    text = np.array([b"hello", b"", b"\x00binary\xff"], dtype=np.object_)
    inp = module.InferInput("TEXT", [3], "BYTES")
    inp.set_data_from_numpy(text)
    result = client(server).infer("bytes_model", [inp])
    assert list(result.as_numpy("UPPER")) == [b"HELLO", b"", b"\x00BINARY\xff"]
    assert list(result.as_numpy("LENGTH")) == [5, 0, 8]


def test_auto_complete_config_fills_the_config(server):
    config = http(server).get_model_config("auto_model")
    assert config["backend"] == "python"
    assert config["max_batch_size"] == 8
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [
        ("X", "TYPE_FP32", [2])]
    assert [(o["name"], o["data_type"], o["dims"]) for o in config["output"]] == [
        ("Y", "TYPE_FP32", [2])]
    assert "dynamic_batching" in config
    inp = httpclient.InferInput("X", [3, 2], "FP32")
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    inp.set_data_from_numpy(x)
    result = http(server).infer("auto_model", [inp])
    np.testing.assert_array_equal(result.as_numpy("Y"), x * 2)


@pytest.mark.parametrize("module,client", [(httpclient, http), (grpcclient, grpc)])
def test_initialize_args_and_request_accessors(server, repo, module, client):
    inp = module.InferInput("IN", [3], "INT64")
    inp.set_data_from_numpy(np.array([1, 2, 3], dtype=np.int64))
    result = client(server).infer("args_model", [inp], request_id="req-42",
                                  parameters={"temperature": "hot", "count": 7})
    seen = json.loads(result.as_numpy("OUT")[0])
    args = seen["args"]
    assert sorted(args) == sorted([
        "model_config", "model_instance_kind", "model_instance_name",
        "model_instance_device_id", "model_repository", "model_version", "model_name"])
    assert args["model_name"] == "args_model"
    assert args["model_version"] == "3"
    assert args["model_repository"] == str(repo / "args_model")
    assert args["model_instance_kind"] == "CPU"
    assert args["model_instance_device_id"] == "0"
    assert args["model_instance_name"] == "args_model_0_0"
    config = json.loads(args["model_config"])
    assert config["name"] == "args_model" and config["backend"] == "python"
    assert config["input"][0]["name"] == "IN" and config["input"][0]["data_type"] == "TYPE_INT64"
    assert seen["requested"] == ["OUT"]
    assert seen["input_names"] == ["IN"]
    assert seen["shape"] == [3]
    assert seen["is_cpu"] is True


@pytest.mark.parametrize("module,client", [(httpclient, http), (grpcclient, grpc)])
def test_request_id_and_parameters_reach_the_model(server, module, client):
    inp = module.InferInput("IN", [3], "INT64")
    inp.set_data_from_numpy(np.array([1, 2, 3], dtype=np.int64))
    result = client(server).infer("args_model", [inp], request_id="req-42",
                                  parameters={"temperature": "hot", "count": 7})
    seen = json.loads(result.as_numpy("OUT")[0])
    assert seen["request_id"] == "req-42"
    assert seen["parameters"] == {"temperature": "hot", "count": 7}


def test_logger_lines_reach_the_server_log(server):
    text = server.text()
    for level, message, line in [("info", "logger-info-line", 8), ("warning", "logger-warn-line", 9),
                                 ("error", "logger-error-line", 10),
                                 ("warning", "logger-specific-line", 11)]:
        pattern = (r"\[worker logger_model\] \[" + level + r"\] model 'logger_model' model\.py:"
                   + str(line) + ": " + message)
        assert re.search(pattern, text), (pattern, text[-3000:])


def test_logger_in_json_log_format(tmp_path):
    write_model(tmp_path, "logger_model", LOGGER_MODEL, IDENTITY_CONFIG.format(name="logger_model"))
    s = Server([tmp_path], "--log-format", "json").start()
    try:
        lines = [json.loads(l) for l in s.text().splitlines() if "logger-warn-line" in l]
        assert len(lines) == 1, s.text()[-3000:]
        entry = lines[0]
        assert "model 'logger_model' model.py:9: logger-warn-line" in entry["msg"]
        assert entry["level"] == "warning" and entry["process"] == "worker logger_model"
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def misbehave(server, mode, module=httpclient, client=http):
    inp = module.InferInput("IN", [2], "FP32")
    inp.set_data_from_numpy(np.array([mode, 5], dtype=np.float32))
    return client(server).infer("misbehaving", [inp])


def error_of(server, mode, module=httpclient, client=http):
    with pytest.raises(InferenceServerException) as e:
        misbehave(server, mode, module, client)
    return str(e.value), e.value.status()


@pytest.mark.parametrize("module,client", [(httpclient, http), (grpcclient, grpc)])
def test_per_request_errors_and_the_instance_keeps_serving(server, module, client):
    cases = {
        1: ["ZeroDivisionError", "division by zero", "model.py:", "in helper", "execute raised"],
        2: ["execute returned 2 responses for 1 requests"],
        3: ["the input is out of range"],
        4: ["output 'OUT' has data type TYPE_INT32", "TYPE_FP32"],
        5: ["output 'OUT' has shape [1, 2]", "[-1]"],
        6: ["output 'OUT' was requested", "no such tensor"],
        7: ["TritonModelException", "model-raised-this"],
        8: ["BLS", "no_such_model_here"],
        10: ["plain error"],
        11: ["execute returned None and sent no response for this request"],
    }
    for mode, needles in cases.items():
        message, status = error_of(server, mode, module, client)
        for needle in needles:
            assert needle in message, (mode, needle, message)
        assert "misbehaving" in message, message
        # The instance keeps serving after each.
        np.testing.assert_array_equal(misbehave(server, 0, module, client).as_numpy("OUT"), [0, 5])
    # A TritonError's code maps to the protocol's.
    _, status = error_of(server, 3, module, client)
    assert status in ("400", "StatusCode.INVALID_ARGUMENT"), status
    _, status = error_of(server, 10, module, client)
    assert status in ("500", "StatusCode.INTERNAL"), status
    # A model's own UNAVAILABLE is that request's answer; its worker is fine.
    message, status = error_of(server, 12, module, client)
    assert status in ("503", "StatusCode.UNAVAILABLE") and "busy now" in message, (status, message)
    np.testing.assert_array_equal(misbehave(server, 0, module, client).as_numpy("OUT"), [0, 5])
    assert "worker" not in message


def test_full_traceback_in_the_log(server):
    error_of(server, 1)
    text = server.text()
    assert "Traceback (most recent call last)" in text
    assert re.search(r"misbehaving.*execute raised", text)


def test_response_sender_of_a_non_decoupled_model(server):
    np.testing.assert_array_equal(misbehave(server, 9).as_numpy("OUT"), [9, 5])


def test_syntax_error_is_a_load_error(server):
    with pytest.raises(InferenceServerException) as e:
        http(server).load_model("syntax_error")
    message = str(e.value)
    assert "SyntaxError" in message and "model.py" in message, message
    assert "line 4" in message or "model.py:4" in message, message
    # Other models never notice.
    assert http(server).is_model_ready("add_sub")


def test_exception_in_initialize_is_a_load_error(server):
    with pytest.raises(InferenceServerException) as e:
        grpc(server).load_model("init_error")
    message = str(e.value)
    assert "RuntimeError" in message and "initialize-failed-on-purpose for init_error" in message
    assert "in check" in message and "in initialize" in message, message
    r = requests.post(server.base + "/v2/repository/index", timeout=60)
    entry = [m for m in r.json() if m["name"] == "init_error"][0]
    assert entry["state"] == "UNAVAILABLE" and "RuntimeError" in entry["reason"], entry
    assert "Traceback (most recent call last)" in server.text()


def test_unload_and_load_again(server, repo):
    c = http(server)
    c.unload_model("add_sub")
    assert not c.is_model_ready("add_sub")
    c.load_model("add_sub")
    assert c.is_model_ready("add_sub")
    a = np.ones(4, dtype=np.float32)
    np.testing.assert_array_equal(c.infer("add_sub", add_sub_inputs(httpclient, a, a))
                                  .as_numpy("OUTPUT0"), a * 2)


DLPACK_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, "IN")
            # Through DLPack and back, without a copy.
            same = pb_utils.Tensor.from_dlpack("OUT", tensor.to_dlpack())
            assert np.shares_memory(same.as_numpy(), tensor.as_numpy())
            responses.append(pb_utils.InferenceResponse([same]))
        return responses
"""

DECOUPLED_CONFIG = """
name: "decoupled"
backend: "python"
model_transaction_policy { decoupled: true }
input [{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }]
"""


def test_dlpack_round_trip(tmp_path):
    write_model(tmp_path, "dlpack", DLPACK_MODEL, IDENTITY_CONFIG.format(name="dlpack"))
    write_model(tmp_path, "decoupled", DLPACK_MODEL, DECOUPLED_CONFIG)
    s = Server([tmp_path], "--model-control-mode", "explicit", "--load-model", "dlpack").start()
    try:
        inp = httpclient.InferInput("IN", [3], "FP32")
        inp.set_data_from_numpy(np.array([1.5, 2.5, 3.5], dtype=np.float32))
        result = http(s).infer("dlpack", [inp])
        np.testing.assert_array_equal(result.as_numpy("OUT"), [1.5, 2.5, 3.5])
        # The same model.py configured decoupled loads, but returns responses
        # from execute: Triton's error (test_python_decoupled.py has the rest).
        http(s).load_model("decoupled")
        r = requests.post(s.base + "/v2/models/decoupled/generate",
                          data=json.dumps({"IN": [1.5]}), timeout=60)
        assert ("Python model 'decoupled' is using the decoupled mode and the execute "
                "function must return None.") in r.json()["error"], r.text
    finally:
        assert s.stop() == 0, s.text()[-3000:]


PROBE_MODEL = """
import sys

import numpy as np
import triton_python_backend_utils as pb_utils
import mmserve_probe  # from the environment's site-packages
import from_pth       # from a folder the environment's .pth file adds


class TritonPythonModel:
    def execute(self, requests):
        first = sys.path.index(mmserve_probe.SITE)
        answer = "%s %s %d" % (mmserve_probe.VALUE, from_pth.VALUE, first)
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", np.array([answer.encode()], dtype=np.object_))]) for _ in requests]
"""


def test_the_environment_comes_first_on_sys_path(tmp_path):
    env = tmp_path / "venv"
    site = env / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n")
    (site / "mmserve_probe.py").write_text(
        f"SITE = {str(site)!r}\nVALUE = 'probe-from-env'\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "from_pth.py").write_text("VALUE = 'pth-applied'\n")
    (site / "extra.pth").write_text(str(extra) + "\n")
    repo = tmp_path / "repo"
    write_model(repo, "probe", PROBE_MODEL, ARGS_CONFIG.replace("args_model", "probe"))
    s = Server([repo], "--python-env", env).start()
    try:
        inp = httpclient.InferInput("IN", [3], "INT64")
        inp.set_data_from_numpy(np.zeros(3, dtype=np.int64))
        out = http(s).infer("probe", [inp]).as_numpy("OUT")[0].decode()
        assert out == "probe-from-env pth-applied 0", out
    finally:
        assert s.stop() == 0, s.text()[-3000:]


VERSION_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", np.array([np.__version__.encode()], dtype=np.object_))]) for _ in requests]
"""


def test_tensors_with_the_environments_numpy(tmp_path):
    """The test's own virtual environment (numpy 2.x, not Debian's 1.24) as
    --python-env: inputs and outputs, numeric and BYTES, pass the same."""
    import sys
    venv = Path(sys.prefix)
    # make test runs pytest from .venv, a Python 3.11 virtual environment
    # (scripts/install-deps.sh): a run outside one is a broken set-up, not a skip.
    assert (venv / "pyvenv.cfg").exists() and sys.version_info[:2] == (3, 11), (
        f"the tests must run in a Python 3.11 virtual environment (.venv); this is {venv}, "
        f"Python {sys.version_info[0]}.{sys.version_info[1]}")
    write_model(tmp_path, "add_sub", ADD_SUB, add_sub_config("add_sub"))
    write_model(tmp_path, "bytes_model", BYTES_MODEL, BYTES_CONFIG)
    write_model(tmp_path, "version", VERSION_MODEL, ARGS_CONFIG.replace("args_model", "version"))
    s = Server([tmp_path], "--python-env", venv).start()
    try:
        c = http(s)
        inp = httpclient.InferInput("IN", [3], "INT64")
        inp.set_data_from_numpy(np.zeros(3, dtype=np.int64))
        assert c.infer("version", [inp]).as_numpy("OUT")[0].decode() == np.__version__
        a = np.array([1, 2, 3, 4], dtype=np.float32)
        result = c.infer("add_sub", add_sub_inputs(httpclient, a, a))
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a * 2)
        text = httpclient.InferInput("TEXT", [2], "BYTES")
        text.set_data_from_numpy(np.array([b"ab", b"c"], dtype=np.object_))
        assert list(c.infer("bytes_model", [text]).as_numpy("UPPER")) == [b"AB", b"C"]
    finally:
        assert s.stop() == 0, s.text()[-3000:]
