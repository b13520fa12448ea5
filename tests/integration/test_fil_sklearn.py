"""scikit-learn through scripts/sklearn_to_treelite.py, end to end: every
supported estimator (RandomForest, ExtraTrees, GradientBoosting,
HistGradientBoosting; classifiers binary and multiclass, regressors) saved
with joblib, converted by the tool (a Treelite checkpoint and a FIL
config.pbtxt), served, and compared through tritonclient with the
estimator's own predict / predict_proba. The tool refuses what it cannot
convert exactly, naming what it takes, and fails loudly when a conversion
does not answer as the estimator.
"""
import subprocess
import sys

import joblib
import numpy as np
import pytest
import requests

import fil_models as fm
from conftest import ROOT, Server

TOOL = ROOT / "scripts" / "sklearn_to_treelite.py"
KINDS = ("rf", "et", "gb", "hgb")
TASKS = ("binary", "multiclass", "regression")


def cases():
    """(model name, kind, task, predict_proba)."""
    out = []
    for kind in KINDS:
        for task in TASKS:
            if task == "regression":
                out.append((f"{kind}_{task}", kind, task, False))
            else:
                out.append((f"{kind}_{task}_class", kind, task, False))
                out.append((f"{kind}_{task}_proba", kind, task, True))
    return out


CASES = cases()


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(repo, {name: (estimator, tool stdout)})."""
    work = tmp_path_factory.mktemp("sklearn_estimators")
    repo = tmp_path_factory.mktemp("sklearn_repo")
    out = {}
    fitted = {}
    for name, kind, task, proba in CASES:
        est = fitted.setdefault((kind, task), fm.sklearn_estimator(kind, task))
        path = work / f"{kind}_{task}.joblib"
        joblib.dump(est, path)
        r = run_tool(path, repo / name, *(["--predict-proba"] if proba else []))
        assert r.returncode == 0, (name, r.stdout, r.stderr)
        out[name] = (est, r.stdout)
    # Labels that are not 0..C-1: the server answers the index in classes_.
    from sklearn.ensemble import RandomForestClassifier

    x, y = fm.training_data("multiclass")
    est = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(
        x, np.array(["low", "mid", "high"])[y])
    joblib.dump(est, work / "labels.joblib")
    r = run_tool(work / "labels.joblib", repo / "string_labels")
    assert r.returncode == 0, r.stderr
    out["string_labels"] = (est, r.stdout)
    # GradientBoosting with init="zero"; a binary threshold; rows to verify on.
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = fm.training_data("binary", nan_fraction=0.0)
    est = GradientBoostingClassifier(n_estimators=10, init="zero", random_state=0).fit(x, y)
    joblib.dump(est, work / "gb_zero.joblib")
    np.save(work / "rows.npy", np.nan_to_num(fm.rows()))
    r = run_tool(work / "gb_zero.joblib", repo / "gb_zero_threshold", "--threshold", "0.3",
                 "--rows", work / "rows.npy", "--instances", "2")
    assert r.returncode == 0, r.stderr
    assert "verified against the estimator on 48 given rows" in r.stdout, r.stdout
    out["gb_zero_threshold"] = (est, r.stdout)
    return repo, out


@pytest.fixture(scope="module")
def server(converted):
    s = Server([converted[0]]).start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def test_the_tool_writes_fil_configs(converted):
    repo, out = converted
    cfg = (repo / "hgb_multiclass_proba" / "config.pbtxt").read_text()
    assert 'backend: "fil"' in cfg and '"treelite_checkpoint"' in cfg, cfg
    assert f"dims: [ {fm.FEATURES} ]" in cfg and "dims: [ 3 ]" in cfg, cfg
    assert (repo / "hgb_multiclass_proba" / "1" / "checkpoint.tl").is_file()
    assert "class indices -> labels: ['high', 'low', 'mid']" in out["string_labels"][1]


def test_every_converted_model_is_ready(server, converted):
    r = requests.post(server.base + "/v2/repository/index", timeout=60)
    entries = {m["name"]: m for m in r.json()}
    assert set(entries) == set(converted[1])
    not_ready = {n: e.get("reason") for n, e in entries.items() if e["state"] != "READY"}
    assert not not_ready, not_ready


@pytest.mark.parametrize("protocol", fm.PROTOCOLS)
@pytest.mark.parametrize("name,kind,task,proba", CASES)
def test_served_answers_equal_the_estimator(server, converted, name, kind, task, proba,
                                            protocol):
    est = converted[1][name][0]
    ref = fm.sklearn_reference(est)
    x = fm.rows()
    if not fm.accepts_nan(est):
        x = np.nan_to_num(x, nan=0.5)
    got = fm.infer(server, protocol, name, x)
    fm.assert_matches(ref, got, x, name, is_classifier=task != "regression", predict_proba=proba,
                      proba_columns=ref.num_classes if proba else None)
    if task != "regression" and not proba:
        # The class is the estimator's predict(), as an index into classes_.
        np.testing.assert_array_equal(got, ref.labels(x).astype(np.float32))


def test_string_labels_answer_class_indices(server, converted):
    est = converted[1]["string_labels"][0]
    x = fm.rows()
    got = fm.infer(server, "grpc", "string_labels", x)
    np.testing.assert_array_equal(est.classes_[got.astype(int)], est.predict(x))


def test_a_binary_threshold_and_init_zero(server, converted):
    est = converted[1]["gb_zero_threshold"][0]
    x = np.nan_to_num(fm.rows(), nan=0.5)
    got = fm.infer(server, "http", "gb_zero_threshold", x)
    want = (est.predict_proba(x)[:, 1] > 0.3).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert (want != est.predict(x)).any(), "the rows do not discriminate the threshold"


def test_unsupported_estimators_are_refused_naming_the_supported_ones(tmp_path):
    from sklearn.ensemble import (AdaBoostClassifier, GradientBoostingRegressor,
                                  IsolationForest)
    from sklearn.linear_model import LinearRegression, LogisticRegression

    x, y = fm.training_data("binary", nan_fraction=0.0)
    _, yr = fm.training_data("regression", nan_fraction=0.0)
    for name, est in [
        ("logistic", LogisticRegression().fit(x, y)),
        ("adaboost", AdaBoostClassifier(n_estimators=3).fit(x, y)),
        ("isolation", IsolationForest(n_estimators=3, random_state=0).fit(x)),
        ("gb_linear_init", GradientBoostingRegressor(n_estimators=3, init=LinearRegression())
         .fit(x, yr)),
    ]:
        joblib.dump(est, tmp_path / f"{name}.joblib")
        r = run_tool(tmp_path / f"{name}.joblib", tmp_path / "repo" / name)
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        assert type(est).__name__ in r.stderr, r.stderr
        if name == "gb_linear_init":
            assert "init" in r.stderr and "zero" in r.stderr, r.stderr
        else:
            assert "HistGradientBoostingRegressor" in r.stderr, r.stderr  # the list
        assert not (tmp_path / "repo" / name).exists(), name
    r = run_tool(tmp_path / "logistic.joblib", tmp_path / "repo" / "x", "--predict-proba")
    assert r.returncode == 1
    est = fm.sklearn_estimator("rf", "regression")
    joblib.dump(est, tmp_path / "reg.joblib")
    r = run_tool(tmp_path / "reg.joblib", tmp_path / "repo" / "reg", "--predict-proba")
    assert r.returncode == 1 and "regressor" in r.stderr, r.stderr


def test_a_conversion_that_differs_fails_loudly():
    """verify() is what stands between a wrong checkpoint and a repository:
    given another model's trees, it refuses."""
    import treelite.sklearn

    sys.path.insert(0, str(ROOT / "scripts"))
    import sklearn_to_treelite as tool

    est = fm.sklearn_estimator("hgb", "binary")
    other = fm.sklearn_estimator("gb", "binary")
    x = np.nan_to_num(fm.rows(), nan=0.5)
    tool.verify(est, treelite.sklearn.import_model(est), x, False, 0.5)  # the same: passes
    with pytest.raises(tool.ConversionError, match="predict_proba: .* differ beyond 1e-06"):
        tool.verify(est, treelite.sklearn.import_model(other), x, False, 0.5)
    reg = fm.sklearn_estimator("rf", "regression")
    with pytest.raises(tool.ConversionError, match="predict: .* differ"):
        tool.verify(reg, treelite.sklearn.import_model(fm.sklearn_estimator("et", "regression")),
                    x, False, 0.5)
