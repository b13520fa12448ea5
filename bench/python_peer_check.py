#!/usr/bin/env python3
"""The example Python models answer alike on mmserve and on Triton.

  python bench/python_peer_check.py HTTP_URL GRPC_URL [NAME]

Sends the same requests to the server at HTTP_URL (host:port) and GRPC_URL
through tritonclient, and checks the answers against what the models compute
themselves (numpy for add_sub_python; the pickled scikit-learn pipeline for
sklearn_iris, loaded here from examples/models). Run against mmserve and
against Triton's tritonserver serving the same model files: passing on both
means a Triton user's model.py runs unchanged on mmserve. Exit status 1 on
any difference. bench/python_peer.sh runs it before measuring.
"""
import pathlib
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

ROOT = pathlib.Path(__file__).resolve().parent.parent


def check_add_sub(client, module):
    a = np.array([1.5, 2, 3, 4], dtype=np.float32)
    b = np.array([10, 20, 30, -4], dtype=np.float32)
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = client.infer("add_sub_python", inputs)
    assert np.array_equal(result.as_numpy("OUTPUT0"), a + b), result.as_numpy("OUTPUT0")
    assert np.array_equal(result.as_numpy("OUTPUT1"), a - b), result.as_numpy("OUTPUT1")


def check_sklearn(client, module):
    import joblib
    pipeline = joblib.load(ROOT / "examples/models/sklearn_iris/1/model.joblib")
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]],
                 dtype=np.float32)
    inp = module.InferInput("INPUT", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("sklearn_iris", [inp])
    expected = pipeline.predict_proba(x).astype(np.float32)
    got = result.as_numpy("PROBABILITIES")
    assert got.shape == (3, 3) and np.allclose(got, expected, rtol=1e-6), (got, expected)
    labels = result.as_numpy("LABEL")
    assert labels.shape == (3, 1) and labels.ravel().tolist() == pipeline.predict(x).tolist(), labels


def main(argv):
    http_url, grpc_url = argv[1], argv[2]
    name = argv[3] if len(argv) > 3 else http_url
    for module, url in ((httpclient, http_url), (grpcclient, grpc_url)):
        client = module.InferenceServerClient(url)
        try:
            check_add_sub(client, module)
            check_sklearn(client, module)
        finally:
            client.close()
    print(f"{name}: add_sub_python and sklearn_iris answer as the models compute, over HTTP and gRPC")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
