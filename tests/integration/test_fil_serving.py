"""The FIL backend's answers through tritonclient HTTP and gRPC, compared with
the frameworks' own predict / predict_proba in Python (fil_models.py): every
model_type (xgboost legacy binary, xgboost_json, xgboost_ubj, lightgbm,
treelite_checkpoint from scikit-learn), regressors and binary and multiclass
classifiers, predict_proba on and off, FIL's output shapes (dims equal to 1
squeezed: [batch] for dims [1], [batch, k] otherwise), the threshold, NaN as
missing, FP64 inputs, the legacy output_class key, a config without
is_classifier, and a config without input/output (filled in from the model).
"""
import numpy as np
import pytest
import requests
from tritonclient.utils import InferenceServerException

import fil_models as fm
from conftest import Server

VARIANTS = [v for t in fm.MODEL_TYPES for v in fm.standard_variants(t)]
BY_NAME = {v.name: v for v in VARIANTS}
SOFTMAX = [fm.Variant("xgboost_json_softmax_class", "xgboost_json", "multiclass", True),
           fm.Variant("xgboost_json_softmax_proba", "xgboost_json", "multiclass", True, True, 3)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(repo, {name: Reference})."""
    repo = tmp_path_factory.mktemp("fil_serving")
    refs = {v.name: fm.write_variant(repo, v) for v in VARIANTS}
    for v in SOFTMAX:
        refs[v.name] = fm.write_xgboost(repo, v.name, "multiclass", "xgboost_json",
                                        objective="multi:softmax", **v.config_args(3))
    # FP64 inputs: the regressors and the binary probabilities of every type.
    for t in fm.MODEL_TYPES:
        for v in (BY_NAME[f"{t}_regression"], BY_NAME[f"{t}_binary_proba"]):
            refs[v.name + "_fp64"] = fm.write_variant(repo, v, v.name + "_fp64",
                                                      input_type="TYPE_FP64")
    # The pre-25.09 key: output_class instead of is_classifier.
    refs["output_class"] = fm.write_xgboost(
        repo, "output_class", "binary", "xgboost_ubj",
        config=fm.fil_config("output_class", "xgboost_ubj", output_class="true", threshold=0.5))
    # Neither key: the framework's predict() of the booster (P(1) for a
    # binary model), as a regression value.
    refs["no_is_classifier"] = fm.write_lightgbm(
        repo, "no_is_classifier", "binary",
        config=fm.fil_config("no_is_classifier", "lightgbm"))
    # No input/output in the config: filled in from the model.
    refs["autocomplete"] = fm.write_xgboost(
        repo, "autocomplete", "multiclass", "xgboost_json",
        config=fm.fil_config("autocomplete", "xgboost_json", is_classifier=True, predict_proba=True,
                             threshold=0.5, io=False))
    # Another file name: default_model_filename (Triton's field).
    ref = fm.write_lightgbm(repo, "custom_file", "multiclass", is_classifier=True,
                            predict_proba=False, threshold=0.5,
                            extra='default_model_filename: "trees.txt"\n')
    ref.path.rename(ref.path.with_name("trees.txt"))
    refs["custom_file"] = ref
    return repo, refs


@pytest.fixture(scope="module")
def server(models):
    s = Server([models[0]]).start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def index(server):
    r = requests.post(server.base + "/v2/repository/index", timeout=60)
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def test_every_model_is_ready(server, models):
    idx = index(server)
    assert set(idx) == set(models[1]), set(models[1]) ^ set(idx)
    not_ready = {n: e.get("reason") for n, e in idx.items() if e["state"] != "READY"}
    assert not not_ready, not_ready


@pytest.mark.parametrize("protocol", fm.PROTOCOLS)
@pytest.mark.parametrize("name", [v.name for v in VARIANTS + SOFTMAX])
def test_answers_equal_the_framework(server, models, name, protocol):
    v = BY_NAME.get(name) or {s.name: s for s in SOFTMAX}[name]
    ref = models[1][name]
    x = fm.rows()
    got = fm.infer(server, protocol, name, x)
    fm.assert_matches(ref, got, x, name, **v.rule())
    # One row: the batch dimension stays ([1] or [1, k]); only dims of 1 go.
    one = fm.infer(server, protocol, name, x[2:3])
    fm.assert_matches(ref, one, x[2:3], name + " (one row)", **v.rule())
    assert one.shape[0] == 1 and one.ndim == (2 if v.predict_proba and v.proba_columns != 1
                                              else 1), one.shape


def test_class_ids_are_the_frameworks_predict(models):
    """The class rule applied to the framework's scores is the framework's
    own predict() (so the class comparisons above are against predict)."""
    x = fm.rows()
    for v in VARIANTS + SOFTMAX:
        ref = models[1][v.name]
        if v.is_classifier and not v.predict_proba and v.threshold == 0.5:
            _, classes = fm.fil_answer(ref, x, **v.rule())
            skip = fm.ambiguous(ref, x)
            np.testing.assert_array_equal(classes[~skip], ref.labels(x)[~skip], err_msg=v.name)


@pytest.mark.parametrize("model_type", fm.MODEL_TYPES)
def test_the_threshold_changes_the_classes(server, models, model_type):
    x = fm.rows()
    at_05 = fm.infer(server, "http", f"{model_type}_binary_class", x)
    at_03 = fm.infer(server, "http", f"{model_type}_binary_threshold", x)
    p = fm.infer(server, "http", f"{model_type}_binary_p1", x)
    # The rows between the two thresholds are class 1 at 0.3, class 0 at 0.5.
    between = (p > 0.3) & (p <= 0.5)
    assert between.any(), "the rows do not discriminate the thresholds"
    assert (at_03[between] == 1).all() and (at_05[between] == 0).all()
    assert (at_03[~between] == at_05[~between]).all()


@pytest.mark.parametrize("model_type", fm.MODEL_TYPES)
def test_nan_is_missing_not_zero(server, models, model_type):
    name = f"{model_type}_regression"
    ref = models[1][name]
    with_nan, zeros = fm.nan_rows()
    want_nan, want_zeros = ref.scores(with_nan), ref.scores(zeros)
    assert not np.allclose(want_nan, want_zeros), "the framework answers NaN as 0 here"
    for protocol in fm.PROTOCOLS:
        got = fm.infer(server, protocol, name, with_nan)
        fm.assert_matches(ref, got, with_nan, name, is_classifier=False)
        got = fm.infer(server, protocol, name, zeros)
        fm.assert_matches(ref, got, zeros, name, is_classifier=False)


@pytest.mark.parametrize("protocol", fm.PROTOCOLS)
@pytest.mark.parametrize("model_type", fm.MODEL_TYPES)
def test_fp64_inputs_equal_the_frameworks_float64_predict(server, models, model_type, protocol):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, fm.FEATURES)) * 1.3  # float64, not FP32-representable
    x[rng.random(x.shape) < 0.1] = np.nan
    for v in (BY_NAME[f"{model_type}_regression"], BY_NAME[f"{model_type}_binary_proba"]):
        ref = models[1][v.name + "_fp64"]
        got = fm.infer(server, protocol, v.name + "_fp64", x)
        fm.assert_matches(ref, got, x, v.name + "_fp64", **v.rule())
    # An FP32 request to an FP64 model is refused like any wrong dtype.
    with pytest.raises(InferenceServerException) as e:
        fm.infer(server, protocol, f"{model_type}_regression_fp64", x.astype(np.float32))
    assert "FP64" in str(e.value) and "FP32" in str(e.value), str(e.value)


@pytest.mark.parametrize("protocol", fm.PROTOCOLS)
def test_lightgbm_fp64_predicts_on_the_float64_values(server, models, protocol):
    """LightGBM compares float64 features with float64 thresholds: rows just
    across a threshold from their FP32 rounding answer differently in FP64,
    and the server answers as LightGBM does on the float64 array."""
    ref = models[1]["lightgbm_regression_fp64"]
    x = fm.rows_between_fp32_and_fp64(fm.lightgbm_thresholds(ref.path))
    want64 = ref.scores(x)
    want32 = ref.scores(x.astype(np.float32))
    assert np.sum(np.abs(want64 - want32) > 1e-6 * np.abs(want64)) >= 5, \
        "the crafted rows do not separate FP64 from FP32"
    got = fm.infer(server, protocol, "lightgbm_regression_fp64", x)
    fm.assert_matches(ref, got, x, "lightgbm fp64", is_classifier=False)


def test_output_class_is_the_legacy_is_classifier(server, models):
    x = fm.rows()
    got = fm.infer(server, "grpc", "output_class", x)
    fm.assert_matches(models[1]["output_class"], got, x, "output_class", is_classifier=True)


def test_without_is_classifier_the_answer_is_the_boosters_predict(server, models):
    x = fm.rows()
    got = fm.infer(server, "http", "no_is_classifier", x)
    fm.assert_matches(models[1]["no_is_classifier"], got, x, "no_is_classifier",
                      is_classifier=False)
    assert ((got > 0) & (got < 1)).all()  # probabilities, not classes


def test_a_config_without_tensors_is_filled_in_from_the_model(server, models):
    r = requests.get(server.base + "/v2/models/autocomplete/config", timeout=60)
    assert r.status_code == 200, r.text
    cfg = r.json()
    assert [(i["name"], i["data_type"], [int(d) for d in i["dims"]]) for i in cfg["input"]] == \
        [("input__0", "TYPE_FP32", [fm.FEATURES])], cfg["input"]
    assert [(o["name"], o["data_type"], [int(d) for d in o["dims"]]) for o in cfg["output"]] == \
        [("output__0", "TYPE_FP32", [3])], cfg["output"]
    r = requests.get(server.base + "/v2/models/autocomplete", timeout=60)
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["inputs"] == [{"name": "input__0", "datatype": "FP32",
                               "shape": [-1, fm.FEATURES]}], meta
    assert meta["outputs"] == [{"name": "output__0", "datatype": "FP32", "shape": [-1, 3]}], meta
    x = fm.rows()
    got = fm.infer(server, "grpc", "autocomplete", x)
    fm.assert_matches(models[1]["autocomplete"], got, x, "autocomplete", is_classifier=True,
                      predict_proba=True, proba_columns=3)


def test_default_model_filename_names_the_file(server, models):
    x = fm.rows()
    got = fm.infer(server, "grpc", "custom_file", x)
    fm.assert_matches(models[1]["custom_file"], got, x, "custom_file", is_classifier=True)


def test_json_requests_answer_the_same(server, models):
    """The plain JSON encoding (no binary extension), NaN excluded (JSON has
    no NaN): the same answers."""
    x = np.nan_to_num(fm.rows(), nan=0.25)
    for name in ("xgboost_json_multiclass_proba", "lightgbm_binary_class"):
        body = {"inputs": [{"name": "input__0", "datatype": "FP32", "shape": list(x.shape),
                            "data": x.ravel().tolist()}]}
        r = requests.post(f"{server.base}/v2/models/{name}/infer", json=body, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        got = np.asarray(out["data"], np.float32).reshape(out["shape"])
        assert out["datatype"] == "FP32"
        np.testing.assert_array_equal(got, fm.infer(server, "http", name, x))


def test_the_examples_answer_as_their_frameworks():
    """examples/models' tree models (scripts/make_example_models.py --fil)."""
    from conftest import EXAMPLES

    s = Server([EXAMPLES], "--model-control-mode", "explicit", "--load-model",
               "credit_risk_xgboost", "--load-model", "house_price_lightgbm").start()
    try:
        rng = np.random.default_rng(3)
        credit = fm.xgboost_reference(
            "binary", fm.xgb.Booster(model_file=str(EXAMPLES / "credit_risk_xgboost" / "1" /
                                                    "xgboost.ubj")), n_features=8)
        x = np.abs(rng.standard_normal((20, 8))).astype(np.float32) * np.float32(20)
        x[3, 1] = np.nan
        got = fm.infer(s, "http", "credit_risk_xgboost", x)
        fm.assert_matches(credit, got, x, "credit_risk_xgboost", is_classifier=True,
                          predict_proba=True, proba_columns=2)
        house = fm.lightgbm_reference(
            "regression", EXAMPLES / "house_price_lightgbm" / "1" / "model.txt", n_features=6)
        x = np.abs(rng.standard_normal((20, 6))).astype(np.float32) * np.float32(50)
        got = fm.infer(s, "grpc", "house_price_lightgbm", x)
        fm.assert_matches(house, got, x, "house_price_lightgbm", is_classifier=False)
    finally:
        assert s.stop() == 0, s.text()[-5000:]
