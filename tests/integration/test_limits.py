"""Hardened limits (issue 7) on both transports: tensors per request,
elements per tensor, header size, and clients that are slow or hold
connections (slowloris, idle, too many connections). Every refusal names the
limit, and the server keeps serving everyone else."""
import json
import socket
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, Server


def add_sub_body(n=4, extra_inputs=0):
    inputs = [{"name": f"INPUT{i}", "shape": [n], "datatype": "FP32", "data": [1.0] * n}
              for i in range(2)]
    inputs += [{"name": f"EXTRA{i}", "shape": [1], "datatype": "FP32", "data": [0.0]}
               for i in range(extra_inputs)]
    return json.dumps({"inputs": inputs})


def serves(server):
    r = requests.post(server.base + "/v2/models/add_sub/infer", data=add_sub_body(), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [2.0] * 4


@pytest.fixture(scope="module")
def limited():
    s = Server([EXAMPLES], "--max-tensors-per-request", "4", "--max-elements-per-tensor",
               "1000").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def test_too_many_tensors_is_refused_on_both_transports(limited):
    r = requests.post(limited.base + "/v2/models/add_sub/infer", data=add_sub_body(extra_inputs=3))
    assert r.status_code == 400, r.text
    assert "5 inputs and 0 requested outputs; the limit is 4 tensors per request" in r.json()["error"]
    # Requested outputs count too.
    body = json.loads(add_sub_body(extra_inputs=1))
    body["outputs"] = [{"name": "OUTPUT0"}, {"name": "OUTPUT1"}]
    r = requests.post(limited.base + "/v2/models/add_sub/infer", json=body)
    assert r.status_code == 400 and "--max-tensors-per-request" in r.json()["error"], r.text
    g = grpcclient.InferenceServerClient(limited.grpc_url)
    inputs = []
    for i in range(5):
        t = grpcclient.InferInput(f"INPUT{i}", [4], "FP32")
        t.set_data_from_numpy(np.ones(4, np.float32))
        inputs.append(t)
    with pytest.raises(InferenceServerException) as e:
        g.infer("add_sub", inputs)
    assert "INVALID_ARGUMENT" in str(e.value.status()), e.value
    assert "the limit is 4 tensors per request" in e.value.message()
    serves(limited)


def test_too_many_elements_is_refused_on_both_transports(limited):
    r = requests.post(limited.base + "/v2/models/add_sub/infer", data=add_sub_body(n=1001))
    assert r.status_code == 400, r.text
    assert ("input 'INPUT0' has shape [1001], 1001 elements; the limit is 1000 per tensor"
            in r.json()["error"]), r.text
    g = grpcclient.InferenceServerClient(limited.grpc_url)
    inputs = []
    for i in range(2):
        t = grpcclient.InferInput(f"INPUT{i}", [1001], "FP32")
        t.set_data_from_numpy(np.ones(1001, np.float32))
        inputs.append(t)
    with pytest.raises(InferenceServerException) as e:
        g.infer("add_sub", inputs)
    assert "--max-elements-per-tensor" in e.value.message(), e.value
    serves(limited)


def test_oversized_headers_are_refused_on_both_transports(limited):
    # HTTP: 431, naming the limit, and the connection is closed.
    r = requests.post(limited.base + "/v2/models/add_sub/infer", data=add_sub_body(),
                      headers={"X-Padding": "p" * (20 << 10)})
    assert r.status_code == 431, r.text
    assert "request headers exceed the limit of 16384 bytes" in r.json()["error"]
    # Many small headers add up the same way.
    many = {f"X-H{i}": "v" * 100 for i in range(200)}
    r = requests.get(limited.base + "/v2/models/add_sub", headers=many)
    assert r.status_code == 431, r.text
    # gRPC: metadata over the same limit is refused.
    g = grpcclient.InferenceServerClient(limited.grpc_url)
    with pytest.raises(InferenceServerException):
        g.get_model_metadata("add_sub", headers={"x-padding": "p" * (20 << 10)})
    assert g.get_model_metadata("add_sub").name == "add_sub"
    serves(limited)
