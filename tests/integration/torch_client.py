"""Helpers shared by the PyTorch backend's integration tests: one client
interface over tritonclient HTTP and gRPC, conversions between numpy (what
tritonclient sends) and torch (what the reference runs), and bit-level
comparison."""
import json

import ml_dtypes
import numpy as np
import requests
import torch
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

PROTOCOLS = ["http", "grpc"]


class Client:
    """infer(model, {input: array}, outputs=[names]) -> {output: array}, the
    same call over either protocol (binary tensors on HTTP). Errors raise
    tritonclient's InferenceServerException."""

    def __init__(self, server, protocol):
        self.protocol = protocol
        self.module = httpclient if protocol == "http" else grpcclient
        if protocol == "http":
            self.client = httpclient.InferenceServerClient(server.url, network_timeout=300)
        else:
            self.client = grpcclient.InferenceServerClient(server.grpc_url)

    def inputs(self, arrays):
        out = []
        for name, array in arrays.items():
            dtype = datatype(array)
            t = self.module.InferInput(name, list(array.shape), dtype)
            if self.protocol == "http":
                t.set_data_from_numpy(array, binary_data=True)
            else:
                t.set_data_from_numpy(array)
            out.append(t)
        return out

    def infer(self, model, arrays, outputs=None, version=""):
        requested = None
        if outputs is not None:
            if self.protocol == "http":
                requested = [httpclient.InferRequestedOutput(o, binary_data=True) for o in outputs]
            else:
                requested = [grpcclient.InferRequestedOutput(o) for o in outputs]
        result = self.client.infer(model, self.inputs(arrays), outputs=requested,
                                   model_version=version)
        response = result.get_response()
        if self.protocol == "grpc":
            names = [o.name for o in response.outputs]
        else:
            names = [o["name"] for o in response["outputs"]]
        return {n: result.as_numpy(n) for n in names}

    def close(self):
        self.client.close()


def datatype(array):
    if array.dtype == ml_dtypes.bfloat16:
        return "BF16"
    if array.dtype == np.object_:
        return "BYTES"
    return {np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "UINT8",
            np.dtype(np.uint16): "UINT16", np.dtype(np.uint32): "UINT32",
            np.dtype(np.uint64): "UINT64", np.dtype(np.int8): "INT8",
            np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32",
            np.dtype(np.int64): "INT64", np.dtype(np.float16): "FP16",
            np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64"}[array.dtype]


def to_torch(array):
    """The tensor torch sees for a client array (BF16 by bit pattern)."""
    if array.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(array.view(np.uint16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(array).copy())


def to_numpy(tensor):
    """A torch result as the client receives it (BF16 as ml_dtypes)."""
    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.uint16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def bits(array):
    """The raw bytes of an array, by element, so NaN payloads, -0.0 and
    subnormals compare exactly."""
    array = np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return array
    return array.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[array.dtype.itemsize])


def assert_bit_identical(got, want, what=""):
    want = np.asarray(want)
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    np.testing.assert_array_equal(bits(got), bits(want), err_msg=str(what))


def index(server):
    """{name: entry} of the repository index (one entry per model or version)."""
    r = requests.post(server.base + "/v2/repository/index", timeout=60)
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def load(server, name):
    return requests.post(f"{server.base}/v2/repository/models/{name}/load", timeout=300)


def statistics(server, name):
    r = requests.get(f"{server.base}/v2/models/{name}/stats", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["model_stats"][0]


def model_config(server, name):
    r = requests.get(f"{server.base}/v2/models/{name}/config", timeout=60)
    assert r.status_code == 200, r.text
    return json.loads(r.text)
