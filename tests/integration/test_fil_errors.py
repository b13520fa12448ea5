"""What the FIL backend refuses, and how it says so: requests with the wrong
feature count or dtype (a 400 naming what the model takes), corrupt,
truncated and missing model files of every model_type (UNAVAILABLE, the
reason naming the file), bad parameters (an unknown model_type, a bool that
is not true/false, a result-changing feature we do not serve: SHAP values,
KIND_GPU, max_batch_size 0, dims that contradict the model). Parameters that
only tune Triton's GPU engine load with a warning naming each. Each load
error is read from the load API (HTTP and gRPC) and the repository index; the
server keeps serving its healthy models throughout.
"""
import re

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

import fil_models as fm
from conftest import Server

HEALTHY = {t: f"healthy_{t}" for t in fm.MODEL_TYPES}
SPEED_ONLY = {  # Triton FIL parameters that tune its GPU engine only
    "algo": "TREE_REORG", "storage_type": "SPARSE", "threads_per_tree": "4",
    "blocks_per_sm": "2", "layout": "breadth_first", "chunk_size": "8",
    "transfer_threshold": "1024", "use_experimental_optimizations": "true",
    "cpu_nthread": "4",
}


def healthy_variant(model_type):
    return fm.Variant(HEALTHY[model_type], model_type, "binary", True, True, 2)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("fil_errors")
    refs = {}
    for t in fm.MODEL_TYPES:
        refs[t] = fm.write_variant(r, healthy_variant(t))
        good = refs[t].path.read_bytes()
        # Garbage where the model should be; the first half of a good file;
        # no file at all.
        for kind, data in (("corrupt", b"\x00\x01 not a tree model {[\xff" * 40),
                           ("truncated", good[:len(good) // 2]), ("missing", None)):
            name = f"{kind}_{t}"
            fm.write_variant(r, healthy_variant(t), name)
            path = fm.model_path(r, name, t)
            if data is None:
                path.unlink()
            else:
                path.write_bytes(data)
    base = fm.Variant("x", "xgboost_json", "binary", True, True, 2)

    def bad(name, **cfg):
        fm.write_variant(r, base, name, **cfg)

    bad("bad_model_type", params={"model_type": "catboost"})
    bad("bad_bool", params={"predict_proba": "yes"})
    bad("bad_bool_case", params={"is_classifier": "True"})
    bad("keys_disagree", params={"output_class": "false"})  # is_classifier is true
    bad("bad_threshold", params={"threshold": "half"})
    bad("gpu", extra="")
    cfg = (r / "gpu" / "config.pbtxt").read_text().replace("KIND_CPU", "KIND_GPU")
    (r / "gpu" / "config.pbtxt").write_text(cfg)
    bad("no_batching", max_batch_size=0)
    bad("wrong_features")  # an 8-feature model, a config that says 7
    cfg = (r / "wrong_features" / "config.pbtxt").read_text().replace(
        f"dims: [ {fm.FEATURES} ]", f"dims: [ {fm.FEATURES - 1} ]", 1)
    (r / "wrong_features" / "config.pbtxt").write_text(cfg)
    fm.write_xgboost(r, "wrong_proba_dims", "multiclass", "xgboost_json", is_classifier=True,
                     predict_proba=True, threshold=0.5, output_dims=(2,))
    fm.write_lightgbm(r, "proba_on_regressor", "regression", is_classifier=True,
                      predict_proba=True, threshold=0.5, output_dims=(2,))
    bad("fp16_input", input_type="TYPE_FP16")
    bad("treeshap")
    cfg = (r / "treeshap" / "config.pbtxt").read_text().replace(
        "output [ ", 'output [ { name: "treeshap_output" data_type: TYPE_FP32 dims: [ 9 ] }, ')
    (r / "treeshap" / "config.pbtxt").write_text(cfg)
    bad("speed_only", params=SPEED_ONLY)
    bad("unknown_key", params={"colour_of_the_trees": "green"})
    return r, refs


@pytest.fixture(scope="module")
def server(repo):
    loads = []
    for name in HEALTHY.values():
        loads += ["--load-model", name]
    s = Server([repo[0]], "--model-control-mode", "explicit", *loads).start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def index(server):
    r = requests.post(server.base + "/v2/repository/index", timeout=60)
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def load_error(server, name):
    """The load's error over HTTP, checked to equal gRPC's and the index's."""
    r = requests.post(f"{server.base}/v2/repository/models/{name}/load", timeout=300)
    assert r.status_code >= 400, r.text
    http_error = r.json()["error"]
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


def still_serving(server, repo):
    x = fm.rows()
    for t, name in HEALTHY.items():
        got = fm.infer(server, "http", name, x)
        fm.assert_matches(repo[1][t], got, x, name, **healthy_variant(t).rule())


def test_healthy_models_serve(server, repo):
    still_serving(server, repo)


# ------------------------------------------------------------------ requests


@pytest.mark.parametrize("protocol", fm.PROTOCOLS)
@pytest.mark.parametrize("features", [fm.FEATURES - 1, fm.FEATURES + 1])
def test_a_wrong_feature_count_is_a_400_naming_the_expected_count(server, protocol, features):
    x = fm.rows(n_rows=2, n_features=features)
    with pytest.raises(InferenceServerException) as e:
        fm.infer(server, protocol, HEALTHY["xgboost_json"], x)
    msg = e.value.message()
    assert e.value.status() in ("400", "StatusCode.INVALID_ARGUMENT"), (e.value.status(), msg)
    assert "input__0" in msg, msg
    # "expected FP32 [-1,8], got FP32 [2,7]" (the batch dim written -1 or ?)
    assert re.search(rf"expected FP32 \[(-1|\?), ?{fm.FEATURES}\]", msg), msg
    assert re.search(rf"got FP32 \[2, ?{features}\]", msg), msg
    assert f"dim 1 is {features}, the model takes {fm.FEATURES}" in msg, msg


def test_a_wrong_feature_count_over_plain_http_is_a_400(server):
    body = {"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, fm.FEATURES - 1],
                        "data": [0.5] * (fm.FEATURES - 1)}]}
    r = requests.post(f"{server.base}/v2/models/{HEALTHY['lightgbm']}/infer", json=body,
                      timeout=60)
    assert r.status_code == 400, r.text
    assert f"the model takes {fm.FEATURES}" in r.json()["error"], r.text


@pytest.mark.parametrize("protocol", fm.PROTOCOLS)
@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_a_wrong_dtype_is_a_400(server, protocol, dtype):
    x = np.ones((2, fm.FEATURES), dtype)
    with pytest.raises(InferenceServerException) as e:
        fm.infer(server, protocol, HEALTHY["treelite_checkpoint"], x)
    msg = e.value.message()
    assert e.value.status() in ("400", "StatusCode.INVALID_ARGUMENT"), (e.value.status(), msg)
    assert "expected FP32" in msg and ("FP64" in msg or "INT32" in msg), msg
    still_serving_one(server)


def still_serving_one(server):
    got = fm.infer(server, "grpc", HEALTHY["treelite_checkpoint"], fm.rows())
    assert got.shape == (48, 2)


# ---------------------------------------------------------------- model files


@pytest.mark.parametrize("model_type", fm.MODEL_TYPES)
@pytest.mark.parametrize("kind", ["corrupt", "truncated"])
def test_a_damaged_model_file_is_unavailable_naming_the_file(server, repo, model_type, kind):
    name = f"{kind}_{model_type}"
    error = load_error(server, name)
    assert f"'{name}'" in error, error
    assert f"1/{fm.FILE_NAMES[model_type]}" in error, error
    assert "Traceback" not in error, error
    still_serving(server, repo)


@pytest.mark.parametrize("model_type", fm.MODEL_TYPES)
def test_a_missing_model_file_names_the_file_and_the_model_type(server, repo, model_type):
    name = f"missing_{model_type}"
    error = load_error(server, name)
    assert f"'{name}'" in error, error
    assert fm.FILE_NAMES[model_type] in error, error
    assert model_type in error, error
    still_serving(server, repo)


def test_a_damaged_file_that_is_replaced_loads(server, repo):
    """The failure leaves nothing behind: the same model loads once its file
    is good."""
    r, refs = repo
    name = "corrupt_lightgbm"
    load_error(server, name)
    fm.model_path(r, name, "lightgbm").write_bytes(refs["lightgbm"].path.read_bytes())
    resp = requests.post(f"{server.base}/v2/repository/models/{name}/load", timeout=300)
    assert resp.status_code == 200, resp.text
    x = fm.rows()
    fm.assert_matches(refs["lightgbm"], fm.infer(server, "grpc", name, x), x, name,
                      **healthy_variant("lightgbm").rule())


# ---------------------------------------------------------------- parameters


def test_an_unknown_model_type_lists_the_five(server):
    error = load_error(server, "bad_model_type")
    assert "catboost" in error and "model_type" in error, error
    for t in fm.MODEL_TYPES:
        assert t in error, (t, error)


@pytest.mark.parametrize("name,key,value", [("bad_bool", "predict_proba", "yes"),
                                            ("bad_bool_case", "is_classifier", "True")])
def test_a_bool_that_is_not_true_or_false(server, name, key, value):
    error = load_error(server, name)
    assert key in error and value in error, error
    assert "true" in error and "false" in error, error


def test_is_classifier_and_output_class_that_disagree(server):
    error = load_error(server, "keys_disagree")
    assert "is_classifier" in error and "output_class" in error, error


def test_a_threshold_that_is_not_a_number(server):
    error = load_error(server, "bad_threshold")
    assert "threshold" in error and "half" in error, error


def test_shap_values_are_refused(server):
    error = load_error(server, "treeshap")
    assert "treeshap_output" in error, error


def test_kind_gpu_is_refused(server):
    error = load_error(server, "gpu")
    assert "KIND_GPU" in error and "KIND_CPU" in error, error


def test_max_batch_size_0_is_refused(server):
    error = load_error(server, "no_batching")
    assert "max_batch_size" in error, error


def test_dims_that_contradict_the_model(server):
    error = load_error(server, "wrong_features")
    assert str(fm.FEATURES) in error and str(fm.FEATURES - 1) in error, error
    error = load_error(server, "wrong_proba_dims")
    assert "output__0" in error and "3" in error, error
    error = load_error(server, "proba_on_regressor")
    assert "predict_proba" in error, error


def test_an_input_that_is_neither_fp32_nor_fp64(server):
    error = load_error(server, "fp16_input")
    assert "TYPE_FP16" in error or "FP16" in error, error
    assert "FP32" in error and "FP64" in error, error


def warnings_about(server, phrase):
    return [line for line in server.log if "[warning]" in line and phrase in line]


def test_speed_only_parameters_load_with_a_warning_each(server, repo):
    r = requests.post(f"{server.base}/v2/repository/models/speed_only/load", timeout=300)
    assert r.status_code == 200, r.text
    for key in SPEED_ONLY:
        assert warnings_about(server, key), (key, server.text()[-4000:])
    x = fm.rows()
    got = fm.infer(server, "http", "speed_only", x)
    assert got.shape == (len(x), 2)
    np.testing.assert_array_equal(got, fm.infer(server, "http", HEALTHY["xgboost_json"], x))


def test_an_unknown_parameter_loads_with_a_warning(server):
    r = requests.post(f"{server.base}/v2/repository/models/unknown_key/load", timeout=300)
    assert r.status_code == 200, r.text
    assert warnings_about(server, "colour_of_the_trees"), server.text()[-4000:]
