"""Tree models for the FIL backend's integration tests (tests/integration/
test_fil_*.py), trained here with fixed seeds by the frameworks themselves and
laid out as Triton's FIL backend expects them:

  <repo>/<name>/config.pbtxt       backend: "fil", parameters { model_type ... }
  <repo>/<name>/1/<FIL's file>     xgboost.model, xgboost.json, xgboost.ubj,
                                   model.txt or checkpoint.tl

Every writer returns a `Reference`: the FRAMEWORK's own answer for the file it
wrote (the model is read back from that file), which a test shapes with FIL's
output rules (`fil_answer`) and compares with the server's answer.

  model_type           written by                       reference answer
  xgboost_json/_ubj    XGBoost (this venv, 3.2)          Booster.predict
  xgboost (legacy)     XGBoost 3.0.5, in a subprocess    XGBoost 3.0.5's predict
                       (>= 3.1 cannot write or read it)
  lightgbm             LightGBM 4.7                      Booster.predict
  treelite_checkpoint  scikit-learn -> treelite.sklearn  estimator.predict /
                                                         predict_proba

The legacy binary format is written by XGBoost 3.0.5 installed apart, in
~/.cache/mmserve/xgboost-3.0.5-py (`pip install --target`; scripts/
install-deps.sh --test puts it there) and run as a subprocess with PYTHONPATH
pointing at it: the venv's XGBoost 3.2 can neither write nor read that format.
The server serves it with Treelite's GTIL, which sums the trees in its own
order: its answers differ from XGBoost's by float32 rounding, so the legacy
type is compared with a tolerance of a few float32 ulps of the output's scale
(`Reference.atol`), and classes near a decision boundary (within that
tolerance) are not compared.

Comparisons (`assert_matches`): classes exactly; floats within 1e-6 relative,
with a tiny absolute floor near 0 (the server answers FP32, the frameworks
often float64).
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

# Imported at module level on purpose: a test run without them fails loudly
# (scripts/install-deps.sh --test installs them into .venv) instead of skipping.
import lightgbm as lgb
import treelite
import treelite.sklearn
import xgboost as xgb

SEED = 20241204
FEATURES = 8
NUM_CLASSES = {"binary": 2, "multiclass": 3, "regression": 1}
XGB305 = Path.home() / ".cache" / "mmserve" / "xgboost-3.0.5-py"
F32_EPS = float(np.finfo(np.float32).eps)

# FIL's file name per model_type (Triton fil_backend src/model.h).
FILE_NAMES = {
    "xgboost": "xgboost.model",
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
MODEL_TYPES = tuple(FILE_NAMES)

# --------------------------------------------------------------------- data


def _labels(x, task):
    """Targets from the features (NaN read as 0), non-linear enough for
    trees of some depth."""
    z = np.nan_to_num(x.astype(np.float64))
    signal = z[:, 0] + 0.8 * z[:, 1] * z[:, 2] - 0.5 * z[:, 3] ** 2 + 0.3 * np.sin(3 * z[:, 4])
    if task == "binary":
        return (signal > -0.4).astype(np.int32)
    if task == "multiclass":
        return np.digitize(signal, [-0.9, 0.4]).astype(np.int32)
    return (3.0 * signal + z[:, 5]).astype(np.float64)


def training_data(task, n_rows=800, n_features=FEATURES, seed=SEED, nan_fraction=0.1):
    """(x FP32 [n_rows, n_features] with NaN for some entries, y)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, n_features)).astype(np.float32)
    y = _labels(x, task)
    x[rng.random(x.shape) < nan_fraction] = np.nan
    return x, y


def rows(n_rows=48, n_features=FEATURES, seed=SEED + 1, nan_fraction=0.15):
    """Request rows: random values with NaN (missing) entries, plus a row of
    zeros and a row of NaN only."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, n_features)).astype(np.float32) * np.float32(1.3)
    x[rng.random(x.shape) < nan_fraction] = np.nan
    if n_rows >= 2:
        x[0] = 0.0
        x[1] = np.nan
    return x


def nan_rows(n_features=FEATURES, seed=SEED + 2):
    """Rows with NaN in the first four features (the ones the targets depend
    on most), and the same rows with those NaN replaced by 0: a framework
    that treats missing as missing answers them differently."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, n_features)).astype(np.float32)
    mask = np.zeros(x.shape, bool)
    mask[:, :4] = rng.random((32, 4)) < 0.6
    mask[np.arange(32), np.arange(32) % 4] = True  # at least one per row
    with_nan = x.copy()
    with_nan[mask] = np.nan
    zeros = x.copy()
    zeros[mask] = 0.0
    return with_nan, zeros


# ---------------------------------------------------------------- reference


@dataclass
class Reference:
    """The framework's answer for one model file.

    scores(x): float64 [n] regression values or P(class 1) for a binary
    classifier, [n, C] class probabilities for a multiclass one.
    labels(x): the framework's own predict() class ids (classifiers), or None.
    atol(want): the absolute floor of the comparison for answers `want`."""
    task: str
    num_classes: int
    n_features: int
    scores: Callable
    labels: Optional[Callable] = None
    gtil_vs_framework: bool = False  # the legacy xgboost type (module doc)
    path: Optional[Path] = None

    def atol(self, want):
        scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
        if self.gtil_vs_framework:
            return 8 * F32_EPS * scale
        return 1e-7 * scale


def softmax(margins):
    e = np.exp(margins - margins.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- configs


def tensor(name, data_type, dims):
    return f'{{ name: "{name}" data_type: {data_type} dims: [ {", ".join(map(str, dims))} ] }}'


def fil_config(name, model_type, n_features=FEATURES, *, is_classifier=None, predict_proba=None,
               threshold=None, output_dims=(1,), input_type="TYPE_FP32", max_batch_size=1024,
               params=None, extra="", io=True, output_class=None):
    """A Triton FIL config.pbtxt. Parameters left None are left out."""
    p = {"model_type": model_type}
    if is_classifier is not None:
        p["is_classifier"] = "true" if is_classifier else "false"
    if output_class is not None:
        p["output_class"] = output_class
    if predict_proba is not None:
        p["predict_proba"] = "true" if predict_proba else "false"
    if threshold is not None:
        p["threshold"] = str(threshold)
    p.update(params or {})
    text = f'name: "{name}"\nbackend: "fil"\nmax_batch_size: {max_batch_size}\n'
    if io:
        text += f"input [ {tensor('input__0', input_type, [n_features])} ]\n"
        text += f"output [ {tensor('output__0', 'TYPE_FP32', output_dims)} ]\n"
    text += "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
    text += "parameters [\n" + ",\n".join(
        f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in p.items()) + "\n]\n"
    return text + extra


def write_config(repo, name, text):
    d = Path(repo) / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.pbtxt").write_text(text)


def model_path(repo, name, model_type, version=1):
    return Path(repo) / name / str(version) / FILE_NAMES[model_type]


def _put(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------ XGBoost

XGB_OBJECTIVES = {"binary": "binary:logistic", "multiclass": "multi:softprob",
                  "regression": "reg:squarederror"}
_TRAINED = {}


def xgboost_params(task, objective=None, n_features=FEATURES):
    params = {"objective": objective or XGB_OBJECTIVES[task], "max_depth": 5, "eta": 0.3,
              "nthread": 1, "seed": 0, "tree_method": "hist"}
    if task == "multiclass":
        params["num_class"] = NUM_CLASSES[task]
    return params


def train_xgboost(task, objective=None, rounds=20, n_features=FEATURES):
    key = ("xgb", task, objective, rounds, n_features)
    if key not in _TRAINED:
        x, y = training_data(task, n_features=n_features)
        _TRAINED[key] = xgb.train(xgboost_params(task, objective, n_features),
                                  xgb.DMatrix(x, y, missing=np.nan), rounds)
    return _TRAINED[key]


def xgboost_reference(task, booster, objective=None, path=None, n_features=FEATURES):
    booster.set_param({"nthread": 1})
    objective = objective or XGB_OBJECTIVES[task]

    def dm(x):
        return xgb.DMatrix(x, missing=np.nan)

    if objective == "multi:softmax":
        # predict() gives class ids; FIL's predict_proba gives softmax of the
        # margins (XGBoost's multi:softprob formula; docs/fil.md).
        def scores(x):
            return softmax(booster.predict(dm(x), output_margin=True).astype(np.float64))

        def labels(x):
            return booster.predict(dm(x)).astype(np.int64)
    else:
        def scores(x):
            return booster.predict(dm(x)).astype(np.float64)

        labels = None
        if task == "binary":
            def labels(x):  # XGBClassifier.predict: P(1) > 0.5
                return (booster.predict(dm(x)) > 0.5).astype(np.int64)
        elif task == "multiclass":
            def labels(x):
                return np.argmax(booster.predict(dm(x)), axis=1).astype(np.int64)
    return Reference(task, NUM_CLASSES[task], n_features, scores, labels, path=path)


def write_xgboost(repo, name, task, model_type="xgboost_json", objective=None, rounds=20,
                  n_features=FEATURES, config=None, version=1, **cfg):
    """XGBoost 3.2 model as xgboost.json or xgboost.ubj; the reference reads
    the written file back."""
    assert model_type in ("xgboost_json", "xgboost_ubj"), model_type
    booster = train_xgboost(task, objective, rounds, n_features)
    path = model_path(repo, name, model_type, version)
    _put(path, bytes(booster.save_raw("json" if model_type == "xgboost_json" else "ubj")))
    write_config(repo, name, config or fil_config(name, model_type, n_features, **cfg))
    return xgboost_reference(task, xgb.Booster(model_file=str(path)), objective, path, n_features)


# A script for XGBoost 3.0.5 (run apart: module doc). argv: params.json
# x.npy y.npy rounds out_model.
_LEGACY_TRAIN = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    import xgboost as xgb
    assert xgb.__version__ == "3.0.5", xgb.__version__
    params, x, y, rounds, out = sys.argv[1:6]
    booster = xgb.train(json.load(open(params)), xgb.DMatrix(np.load(x), np.load(y),
                        missing=np.nan), int(rounds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Saving into deprecated binary model format"
        raw = booster.save_raw(raw_format="deprecated")
    open(out, "wb").write(bytes(raw))
""")

# argv: model x.npy out.npy output_margin
_LEGACY_PREDICT = textwrap.dedent("""
    import sys
    import numpy as np
    import xgboost as xgb
    assert xgb.__version__ == "3.0.5", xgb.__version__
    booster = xgb.Booster(model_file=sys.argv[1])
    booster.set_param({"nthread": 1})
    p = booster.predict(xgb.DMatrix(np.load(sys.argv[2]), missing=np.nan),
                        output_margin=sys.argv[4] == "1")
    np.save(sys.argv[3], p)
""")


# Scratch files of the XGBoost 3.0.5 subprocesses, outside any repository.
_WORK = tempfile.TemporaryDirectory(prefix="fil_models_")


def _xgboost_305(script, *args):
    if not (XGB305 / "xgboost").is_dir():
        raise RuntimeError(f"XGBoost 3.0.5 is not installed in {XGB305}: run "
                           "scripts/install-deps.sh --test (the legacy binary format needs it)")
    # Only the 3.0.5 folder and the interpreter's own site-packages (numpy):
    # never the venv's XGBoost 3.2.
    env = dict(os.environ, PYTHONPATH=str(XGB305))
    subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def write_xgboost_legacy(repo, name, task, objective=None, rounds=20, n_features=FEATURES,
                         config=None, version=1, **cfg):
    """XGBoost 3.0.5's legacy binary xgboost.model; the reference is XGBoost
    3.0.5's predict on that file (a subprocess per distinct request)."""
    key = ("legacy", task, objective, rounds, n_features)
    path = model_path(repo, name, "xgboost", version)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(_WORK.name) / f"{name}-{version}"
    work.mkdir(exist_ok=True)
    if key not in _TRAINED:
        x, y = training_data(task, n_features=n_features)
        np.save(work / "x.npy", x)
        np.save(work / "y.npy", y)
        (work / "params.json").write_text(json.dumps(xgboost_params(task, objective, n_features)))
        _xgboost_305(_LEGACY_TRAIN, work / "params.json", work / "x.npy", work / "y.npy", rounds,
                     path)
        _TRAINED[key] = path.read_bytes()
    else:
        _put(path, _TRAINED[key])
    write_config(repo, name, config or fil_config(name, "xgboost", n_features, **cfg))
    cache = {}

    def predict(x, margin=False):
        x = np.ascontiguousarray(x)  # FP32, or FP64 as sent
        k = (hashlib.sha256(x.tobytes()).hexdigest(), x.shape, margin)
        if k not in cache:
            np.save(work / "x.npy", x)
            _xgboost_305(_LEGACY_PREDICT, path, work / "x.npy", work / "p.npy", int(margin))
            cache[k] = np.load(work / "p.npy").astype(np.float64)
        return cache[k]

    labels = None
    if task == "binary":
        def labels(x):
            return (predict(x) > 0.5).astype(np.int64)
    elif task == "multiclass":
        def labels(x):
            return np.argmax(predict(x), axis=1).astype(np.int64)
    return Reference(task, NUM_CLASSES[task], n_features, predict, labels,
                     gtil_vs_framework=True, path=path)


# ----------------------------------------------------------------- LightGBM

LGB_OBJECTIVES = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}


def train_lightgbm(task, rounds=20, n_features=FEATURES, objective=None):
    key = ("lgb", task, rounds, n_features, objective)
    if key not in _TRAINED:
        x, y = training_data(task, n_features=n_features)
        params = {"objective": objective or LGB_OBJECTIVES[task], "num_leaves": 15,
                  "min_data_in_leaf": 5, "learning_rate": 0.2, "num_threads": 1,
                  "deterministic": True, "seed": 0, "verbose": -1}
        if task == "multiclass":
            params["num_class"] = NUM_CLASSES[task]
        booster = lgb.train(params, lgb.Dataset(x, y, params={"verbose": -1}), rounds)
        _TRAINED[key] = booster.model_to_string().encode()
    return _TRAINED[key]


def lightgbm_reference(task, path, n_features=FEATURES):
    booster = lgb.Booster(model_file=str(path))

    def scores(x):
        return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)

    labels = None
    if task == "binary":
        def labels(x):  # LGBMClassifier.predict: P(1) > 0.5
            return (scores(x) > 0.5).astype(np.int64)
    elif task == "multiclass":
        def labels(x):
            return np.argmax(scores(x), axis=1).astype(np.int64)
    return Reference(task, NUM_CLASSES[task], n_features, scores, labels, path=path)


def write_lightgbm(repo, name, task, rounds=20, n_features=FEATURES, config=None, version=1,
                   objective=None, **cfg):
    """LightGBM 4.7's model.txt; the reference reads the written file back."""
    path = model_path(repo, name, "lightgbm", version)
    _put(path, train_lightgbm(task, rounds, n_features, objective))
    write_config(repo, name, config or fil_config(name, "lightgbm", n_features, **cfg))
    return lightgbm_reference(task, path, n_features)


# ------------------------------------------------------- scikit-learn/Treelite


def sklearn_estimator(kind, task, seed=0):
    """A small fitted scikit-learn estimator. kind: rf, et, gb, hgb."""
    from sklearn import ensemble

    classify = task != "regression"
    small = dict(random_state=seed)
    if kind == "rf":
        est = (ensemble.RandomForestClassifier if classify else ensemble.RandomForestRegressor)(
            n_estimators=15, max_depth=6, **small)
    elif kind == "et":
        est = (ensemble.ExtraTreesClassifier if classify else ensemble.ExtraTreesRegressor)(
            n_estimators=15, max_depth=6, **small)
    elif kind == "gb":
        est = (ensemble.GradientBoostingClassifier if classify
               else ensemble.GradientBoostingRegressor)(n_estimators=15, max_depth=3, **small)
    elif kind == "hgb":
        est = (ensemble.HistGradientBoostingClassifier if classify
               else ensemble.HistGradientBoostingRegressor)(max_iter=15, max_leaf_nodes=15, **small)
    else:
        raise ValueError(kind)
    # GradientBoosting* refuse NaN: they train on the rows without any.
    x, y = training_data(task, nan_fraction=0.0 if kind == "gb" else 0.1)
    return est.fit(x, y)


def accepts_nan(est):
    try:
        est.predict(np.full((1, est.n_features_in_), np.nan, np.float32))
        return True
    except ValueError:
        return False


def sklearn_reference(est, path=None):
    classify = hasattr(est, "predict_proba")
    n = int(est.n_features_in_)
    if not classify:
        return Reference("regression", 1, n, lambda x: est.predict(x).astype(np.float64),
                         path=path)
    c = len(est.classes_)
    task = "binary" if c == 2 else "multiclass"

    def scores(x):
        p = est.predict_proba(x).astype(np.float64)
        return p[:, 1] if c == 2 else p

    def labels(x):  # the index of the predicted class in classes_
        return np.searchsorted(est.classes_, est.predict(x)).astype(np.int64)

    return Reference(task, c, n, scores, labels, path=path)


def write_sklearn(repo, name, kind, task, config=None, version=1, **cfg):
    """A scikit-learn estimator converted by treelite.sklearn to checkpoint.tl
    (what scripts/sklearn_to_treelite.py does); the reference is the
    estimator itself."""
    est = _TRAINED.get(("sk", kind, task)) or sklearn_estimator(kind, task)
    _TRAINED[("sk", kind, task)] = est
    path = model_path(repo, name, "treelite_checkpoint", version)
    path.parent.mkdir(parents=True, exist_ok=True)
    treelite.sklearn.import_model(est).serialize(str(path))
    write_config(repo, name, config or fil_config(name, "treelite_checkpoint",
                                                  est.n_features_in_, **cfg))
    ref = sklearn_reference(est, path)
    ref.estimator = est
    return ref


# The engines' footprint formulas (TreeModel::info().bytes), as documented in
# src/backends/fil/{xgboost,lightgbm,treelite}_model.cc: XGBoost and LightGBM
# have no size API, so the engine computes the size from the model's shape
# (model + tree x trees + node x nodes, or leaf x leaves) with constants
# fitted to the libraries' in-memory structures; Treelite's is the bytes of
# its model arrays (the frames of TreeliteSerializeModelToPyBuffer) plus
# per-tree and per-model overheads. The constants are read from those
# sources (they are refitted as the libraries change); the shapes are
# recomputed here from the model as each library loads it.
ROOT = Path(__file__).resolve().parents[2]


def engine_constants(engine):
    """{"kModelBytes": N, ...} of src/backends/fil/<engine>_model.cc."""
    text = (ROOT / "src" / "backends" / "fil" / f"{engine}_model.cc").read_text()
    found = dict(re.findall(r"constexpr uint64_t (k[A-Za-z]+Bytes) = (\d+)", text))
    return {k: int(v) for k, v in found.items()}


def _treelite_array_bytes(model):
    import ctypes

    from treelite.core import _LIB, _check_call
    from treelite.model import _TreelitePyBufferFrame

    frames = ctypes.POINTER(_TreelitePyBufferFrame)()
    n = ctypes.c_size_t()
    _check_call(_LIB.TreeliteSerializeModelToPyBuffer(model.handle, ctypes.byref(frames),
                                                      ctypes.byref(n)))
    return sum(frames[i].itemsize * frames[i].nitem for i in range(n.value))


def library_footprint(model_type, path):
    """The footprint the server reports for the model file at `path`."""
    if model_type in ("xgboost_json", "xgboost_ubj"):
        c = engine_constants("xgboost")
        trees = json.loads(bytes(xgb.Booster(model_file=str(path)).save_raw("json")))
        trees = trees["learner"]["gradient_booster"]["model"]["trees"]
        nodes = sum(int(t["tree_param"]["num_nodes"]) for t in trees)
        return c["kModelBytes"] + c["kTreeBytes"] * len(trees) + c["kNodeBytes"] * nodes
    if model_type == "lightgbm":
        c = engine_constants("lightgbm")
        info = lgb.Booster(model_file=str(path)).dump_model()["tree_info"]
        leaves = sum(int(t["num_leaves"]) for t in info)
        return c["kModelBytes"] + c["kTreeBytes"] * len(info) + c["kLeafBytes"] * leaves
    c = engine_constants("treelite")
    if model_type == "xgboost":
        model = treelite.frontend.load_xgboost_model_legacy_binary(str(path))
    else:
        model = treelite.Model.deserialize(str(path))
    return c["kModelBytes"] + c["kTreeBytes"] * model.num_tree + _treelite_array_bytes(model)


def lightgbm_thresholds(path):
    """{feature: [split thresholds]} of a LightGBM model.txt."""
    out = {}

    def walk(node):
        if "split_feature" in node:
            out.setdefault(node["split_feature"], []).append(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in lgb.Booster(model_file=str(path)).dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return out


def rows_between_fp32_and_fp64(thresholds, n_rows=32, n_features=FEATURES, seed=SEED + 3):
    """FP64 rows whose every feature lies just across a split threshold from
    its FP32 rounding: a library that predicts on the float64 values takes
    other branches than one that rounds them to float32 first."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, n_features))
    for f, ts in thresholds.items():
        for r in range(n_rows):
            t = float(rng.choice(ts))
            ulp = float(np.spacing(np.float32(abs(t)) if t else np.float32(1e-30)))
            for c in (t + ulp / 4, t - ulp / 4, t + ulp / 8, t - ulp / 8):
                if (float(np.float32(c)) <= t) != (c <= t):
                    x[r, f] = c
                    break
    return x


# --------------------------------------------------------- FIL's answer


def fil_answer(ref, x, *, is_classifier, predict_proba=False, threshold=0.5, proba_columns=None):
    """What a FIL model answers for rows x (facts: Triton fil_backend), from
    the framework's scores, as float64 (compared with tolerance) and the
    class ids (compared exactly, None if the answer is not classes):

      regression or is_classifier false:   scores, [n] (or [n, C])
      binary, class:                        1.0 if P(1) > threshold else 0.0, [n]
      binary, predict_proba, dims [2]:      (1-p, p), [n, 2]
      binary, predict_proba, dims [1]:      p, [n]
      multiclass, class:                    argmax, [n]
      multiclass, predict_proba:            probabilities, [n, C]
    """
    s = ref.scores(x)
    if not is_classifier or ref.task == "regression":
        return s, None
    if ref.task == "binary":
        if predict_proba:
            if proba_columns == 1:
                return s, None
            return np.stack([1.0 - s, s], axis=1), None
        return None, (s > threshold).astype(np.int64)
    if predict_proba:
        return s, None
    return None, np.argmax(s, axis=1).astype(np.int64)


def ambiguous(ref, x, threshold=0.5):
    """Rows whose class a tolerance could flip: for the legacy type only
    (module doc), none otherwise."""
    s = ref.scores(x)
    if not ref.gtil_vs_framework or ref.task == "regression":
        return np.zeros(len(x), bool)
    tol = ref.atol(s)
    if ref.task == "binary":
        return np.abs(s - threshold) <= tol
    top = np.sort(s, axis=1)
    return top[:, -1] - top[:, -2] <= 2 * tol


def assert_matches(ref, got, x, what="", **rule):
    """The server's answer `got` (FP32, as received) against FIL's answer
    computed from the framework's (fil_answer); shapes exactly."""
    floats, classes = fil_answer(ref, x, **rule)
    want = floats if classes is None else classes
    assert got.dtype == np.float32, (what, got.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if classes is not None:
        skip = ambiguous(ref, x, rule.get("threshold", 0.5))
        np.testing.assert_array_equal(got[~skip], classes[~skip].astype(np.float32),
                                      err_msg=str(what))
        assert skip.sum() <= max(1, len(x) // 10), (what, "too many rows near a boundary")
        return
    np.testing.assert_allclose(got.astype(np.float64), floats, rtol=1e-6,
                               atol=ref.atol(floats), err_msg=str(what))


# ------------------------------------------------------------------ client

PROTOCOLS = ("http", "grpc")


def client(server, protocol):
    if protocol == "http":
        import tritonclient.http as httpclient
        return httpclient.InferenceServerClient(server.url, network_timeout=300)
    import tritonclient.grpc as grpcclient
    return grpcclient.InferenceServerClient(server.grpc_url)


def infer(server, protocol, model, x, input_name="input__0", output="output__0", datatype=None,
          c=None):
    """The model's output__0 for rows x (binary tensors on HTTP). Errors
    raise tritonclient's InferenceServerException."""
    own = c is None
    c = c or client(server, protocol)
    try:
        if protocol == "http":
            import tritonclient.http as mod
        else:
            import tritonclient.grpc as mod
        dtype = datatype or {np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
                             np.dtype(np.int32): "INT32"}[x.dtype]
        t = mod.InferInput(input_name, list(x.shape), dtype)
        if protocol == "http":
            t.set_data_from_numpy(x, binary_data=True)
            outs = [mod.InferRequestedOutput(output, binary_data=True)]
        else:
            t.set_data_from_numpy(x)
            outs = [mod.InferRequestedOutput(output)]
        return c.infer(model, [t], outputs=outs).as_numpy(output)
    finally:
        if own:
            c.close()


# -------------------------------------------------- the standard set of models


@dataclass(frozen=True)
class Variant:
    """One served model: a trained model (library, task) under one output
    rule. name: <model_type>_<task>_<rule>."""
    name: str
    model_type: str
    task: str
    is_classifier: bool
    predict_proba: bool = False
    proba_columns: Optional[int] = None
    threshold: float = 0.5

    def rule(self):
        return dict(is_classifier=self.is_classifier, predict_proba=self.predict_proba,
                    threshold=self.threshold, proba_columns=self.proba_columns)

    def config_args(self, ref_classes):
        args = dict(is_classifier=self.is_classifier)
        if self.is_classifier:
            args["threshold"] = self.threshold
            args["predict_proba"] = self.predict_proba
        if self.predict_proba:
            args["output_dims"] = (self.proba_columns or ref_classes,)
        return args


def standard_variants(model_type):
    """Regressor; binary classifier: class ids, probabilities [n,2], P(1)
    alone [n] (dims [1]), class ids at threshold 0.3; multiclass: class ids,
    probabilities [n,3]."""
    t = model_type
    return [
        Variant(f"{t}_regression", t, "regression", False),
        Variant(f"{t}_binary_class", t, "binary", True),
        Variant(f"{t}_binary_proba", t, "binary", True, True, 2),
        Variant(f"{t}_binary_p1", t, "binary", True, True, 1),
        Variant(f"{t}_binary_threshold", t, "binary", True, threshold=0.3),
        Variant(f"{t}_multiclass_class", t, "multiclass", True),
        Variant(f"{t}_multiclass_proba", t, "multiclass", True, True, 3),
    ]


# treelite_checkpoint serves scikit-learn: which estimator per task. The
# binary one is a HistGradientBoostingClassifier (one output, a sigmoid:
# FIL's binary rules apply); a random forest classifier has one leaf value per
# class (FIL's multiclass rules, even for two classes).
SKLEARN_FOR_TASK = {"binary": "hgb", "multiclass": "rf", "regression": "rf"}


def write_variant(repo, v: Variant, name=None, **cfg_extra):
    """Writes variant `v` (as `name`, default v.name); returns its Reference."""
    name = name or v.name
    args = v.config_args(NUM_CLASSES[v.task])
    args.update(cfg_extra)
    if v.model_type in ("xgboost_json", "xgboost_ubj"):
        return write_xgboost(repo, name, v.task, v.model_type, **args)
    if v.model_type == "xgboost":
        return write_xgboost_legacy(repo, name, v.task, **args)
    if v.model_type == "lightgbm":
        return write_lightgbm(repo, name, v.task, **args)
    return write_sklearn(repo, name, SKLEARN_FOR_TASK[v.task], v.task, **args)
