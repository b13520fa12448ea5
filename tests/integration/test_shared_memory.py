"""System shared memory over HTTP and gRPC with tritonclient.utils.shared_memory."""
import os

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

TRANSPORTS = ["http", "grpc"]


@pytest.fixture(params=TRANSPORTS)
def transport(request, server):
    if request.param == "http":
        client = httpclient.InferenceServerClient(server.url)
        module = httpclient
    else:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        module = grpcclient
    client.unregister_system_shared_memory()
    yield request.param, client, module
    client.unregister_system_shared_memory()
    client.close()


@pytest.fixture()
def regions():
    made = []

    def make(name, size):
        key = f"/mmserve_test_{os.getpid()}_{name}"
        handle = shm.create_shared_memory_region(name, key, size)
        made.append(handle)
        return key, handle

    yield make
    for handle in made:
        shm.destroy_shared_memory_region(handle)


def status_names(kind, client):
    status = client.get_system_shared_memory_status()
    if kind == "http":
        return {r["name"]: r for r in status}
    return {name: r for name, r in status.regions.items()}


def test_inputs_and_outputs_in_shared_memory(transport, regions):
    kind, client, module = transport
    a = np.arange(4, dtype=np.float32)
    b = np.full(4, 10, dtype=np.float32)
    in_key, in_handle = regions("in", 32)
    out_key, out_handle = regions("out", 64)
    shm.set_shared_memory_region(in_handle, [a, b])
    client.register_system_shared_memory("in", in_key, 32)
    client.register_system_shared_memory("out", out_key, 64)
    names = status_names(kind, client)
    assert set(names) == {"in", "out"}
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_shared_memory("in", 16)
    inputs[1].set_shared_memory("in", 16, offset=16)
    outputs = [module.InferRequestedOutput("OUTPUT0"), module.InferRequestedOutput("OUTPUT1")]
    outputs[0].set_shared_memory("out", 16)
    outputs[1].set_shared_memory("out", 16, offset=32)
    result = client.infer("add_sub", inputs, outputs=outputs)
    np.testing.assert_array_equal(shm.get_contents_as_numpy(out_handle, np.float32, [4]), a + b)
    np.testing.assert_array_equal(
        shm.get_contents_as_numpy(out_handle, np.float32, [4], offset=32), a - b)
    out0 = result.get_output("OUTPUT0")
    if kind == "http":
        # As Triton: no data and no parameters for an output in shared memory
        # (Triton's C++ client fails on parameters without binary_data_size).
        assert out0 == {"name": "OUTPUT0", "datatype": "FP32", "shape": [4]}
    else:
        params = {k: v.ListFields()[0][1] for k, v in out0.parameters.items()}
        assert params["shared_memory_region"] == "out"
        assert params["shared_memory_byte_size"] == 16
    # Mixed: one input in shared memory, one sent inline.
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_shared_memory("in", 16, offset=16)
    inputs[1].set_data_from_numpy(a)
    result = client.infer("add_sub", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)


def expect_error(fn, http_status, grpc_code, *words, kind):
    with pytest.raises(InferenceServerException) as e:
        fn()
    if kind == "http":
        assert str(http_status) in str(e.value.status()), (e.value.status(), e.value.message())
    else:
        assert e.value.status() == grpc_code, (e.value.status(), e.value.message())
    for w in words:
        assert w in e.value.message(), (w, e.value.message())


def test_bad_shared_memory_references(transport, regions):
    kind, client, module = transport
    key, handle = regions("small", 16)
    shm.set_shared_memory_region(handle, [np.ones(4, np.float32)])
    client.register_system_shared_memory("small", key, 16)
    # Registering twice, an unknown key, a size past the object.
    expect_error(lambda: client.register_system_shared_memory("small", key, 16), 409,
                 "StatusCode.ALREADY_EXISTS", "already registered", kind=kind)
    expect_error(lambda: client.register_system_shared_memory("x", "/mmserve_no_such_key", 16),
                 400, "StatusCode.INVALID_ARGUMENT", "cannot open", kind=kind)
    expect_error(lambda: client.register_system_shared_memory("big", key, 4096), 400,
                 "StatusCode.INVALID_ARGUMENT", "exceeds", kind=kind)

    def infer(in_region="small", in_offset=0, in_size=16, out=None):
        inputs = [module.InferInput("INPUT0", [4], "FP32"),
                  module.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_shared_memory(in_region, in_size, offset=in_offset)
        inputs[1].set_data_from_numpy(np.ones(4, np.float32))
        outputs = None
        if out:
            o = module.InferRequestedOutput("OUTPUT0")
            o.set_shared_memory(*out)
            outputs = [o]
        return client.infer("add_sub", inputs, outputs=outputs)

    expect_error(lambda: infer(in_region="nope"), 404, "StatusCode.NOT_FOUND", "'nope'", kind=kind)
    expect_error(lambda: infer(in_offset=8), 400, "StatusCode.INVALID_ARGUMENT", "exceeds region",
                 kind=kind)
    expect_error(lambda: infer(in_size=12), 400, "StatusCode.INVALID_ARGUMENT", "INPUT0",
                 kind=kind)
    out_key, _ = regions("tiny", 8)
    client.register_system_shared_memory("tiny", out_key, 8)
    expect_error(lambda: infer(out=("tiny", 8)), 400, "StatusCode.INVALID_ARGUMENT",
                 "needs 16 bytes", kind=kind)
    # Unregistered regions are gone for later requests; the server still serves.
    client.unregister_system_shared_memory("small")
    expect_error(lambda: infer(), 404, "StatusCode.NOT_FOUND", "'small'", kind=kind)
    assert "small" not in status_names(kind, client)
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    for i in inputs:
        i.set_data_from_numpy(np.ones(4, np.float32))
    np.testing.assert_array_equal(client.infer("add_sub", inputs).as_numpy("OUTPUT0"),
                                  np.full(4, 2, np.float32))


@pytest.mark.parametrize("body,words", [
    ("", "not valid JSON"),
    ("[1]", "JSON object"),
    ('{"offset": 0, "byte_size": 8}', "no \"key\""),
    ('{"key": "/k"}', "no \"byte_size\""),
    ('{"key": 5, "byte_size": 8}', "\"key\" must be a string"),
    ('{"key": "/k", "byte_size": -8}', "\"byte_size\" must be a non-negative integer"),
])
def test_bad_register_bodies_over_http(server, body, words):
    import requests

    r = requests.post(server.base + "/v2/systemsharedmemory/region/r/register", data=body)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"], r.json()
    r = requests.get(server.base + "/v2/systemsharedmemory/region/r/status")
    assert r.status_code == 404 and "'r'" in r.json()["error"]
    assert requests.get(server.base + "/v2/systemsharedmemory/register").status_code == 404
    assert requests.get(server.base + "/v2/systemsharedmemory/unregister").status_code == 405
