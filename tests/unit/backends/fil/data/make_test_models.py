#!/usr/bin/env python3
"""Writes the FIL engine's unit-test models and their frameworks' answers.

Each model is tiny (4 features, a few shallow trees) and trained on fixed
data with fixed seeds; expected.json holds, for the same rows (NaN included),
what the framework itself predicts: `value` (Booster.predict / a regressor's
predict: the objective's transform), `proba` (predict_proba: n x C) and
`classes` (predict: class ids). tree_model_test.cc loads each model through
mmserve's engines and compares.

Run from the repository root, with xgboost-cpu 3.2.0, lightgbm 4.7.0,
treelite 4.8.1 and scikit-learn in the Python (scripts/install-deps.sh --test
puts them in .venv) and XGBoost 3.0.5 for the legacy binary model
(~/.cache/mmserve/xgboost-3.0.5-py, or XGB_LEGACY_PY):
    .venv/bin/python tests/unit/backends/fil/data/make_test_models.py
"""
import json
import os
import subprocess
import sys

import lightgbm as lgb
import numpy as np
import sklearn.ensemble as ske
import treelite
import xgboost as xgb

OUT = os.path.dirname(os.path.abspath(__file__))
F = 4
rng = np.random.default_rng(21)
X = rng.random((300, F)).astype(np.float32)
X[rng.random(X.shape) < 0.05] = np.nan
signal = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) - 0.3 * np.nan_to_num(X[:, 2])
y_reg = (signal + 0.1 * rng.standard_normal(300)).astype(np.float32)
y_bin = (signal > 0.6).astype(int)
y_multi = np.digitize(signal, [0.4, 0.8])  # 3 classes

# The rows the test predicts: a few training rows, rows with NaN, all-NaN.
rows = np.array(X[:6], dtype=np.float32)
rows = np.vstack([rows, [[np.nan, 0.7, 0.1, 0.2], [0.9, np.nan, np.nan, 0.5],
                         [np.nan] * F, [0.05, 0.95, 0.9, 0.0]]]).astype(np.float32)

models = {}


def record(name, file, model_type, num_classes, value, proba=None, classes=None):
    models[name] = {
        "file": file, "model_type": model_type, "num_features": F, "num_classes": num_classes,
        "value": np.asarray(value, dtype=np.float64).ravel().tolist(),
        "proba": None if proba is None else np.asarray(proba, dtype=np.float64).ravel().tolist(),
        "classes": None if classes is None else np.asarray(classes).ravel().astype(int).tolist(),
    }


# ---- XGBoost 3.2 (JSON and UBJSON)
def xgb_model(params, label, rounds=4):
    d = xgb.DMatrix(X, label=label)
    return xgb.train({"max_depth": 3, "eta": 0.5, "nthread": 1, "seed": 0, **params}, d, rounds)


dr = xgb.DMatrix(rows)
b = xgb_model({"objective": "binary:logistic"}, y_bin)
b.save_model(os.path.join(OUT, "xgb_binary.json"))
b.save_model(os.path.join(OUT, "xgb_binary.ubj"))
p = b.predict(dr)
record("xgb_binary_json", "xgb_binary.json", "xgboost_json", 2, p, np.c_[1 - p, p], p > 0.5)
record("xgb_binary_ubj", "xgb_binary.ubj", "xgboost_ubj", 2, p, np.c_[1 - p, p], p > 0.5)

b = xgb_model({"objective": "multi:softprob", "num_class": 3}, y_multi)
b.save_model(os.path.join(OUT, "xgb_softprob.json"))
p = b.predict(dr)
record("xgb_softprob", "xgb_softprob.json", "xgboost_json", 3, p, p, p.argmax(1))

b = xgb_model({"objective": "multi:softmax", "num_class": 3}, y_multi)
b.save_model(os.path.join(OUT, "xgb_softmax.ubj"))
margin = b.predict(dr, output_margin=True)
e = np.exp(margin - margin.max(1, keepdims=True))
proba = e / e.sum(1, keepdims=True)
record("xgb_softmax", "xgb_softmax.ubj", "xgboost_ubj", 3, proba, proba, b.predict(dr))

b = xgb_model({"objective": "reg:squarederror"}, y_reg)
b.save_model(os.path.join(OUT, "xgb_regression.json"))
record("xgb_regression", "xgb_regression.json", "xgboost_json", 1, b.predict(dr))

# gblinear: refused
b = xgb.train({"booster": "gblinear", "objective": "reg:squarederror", "nthread": 1},
              xgb.DMatrix(X[~np.isnan(X).any(1)], label=y_reg[~np.isnan(X).any(1)]), 2)
b.save_model(os.path.join(OUT, "xgb_gblinear.json"))

# ---- LightGBM 4.7 (text)
def lgb_model(params, label, rounds=4):
    d = lgb.Dataset(X, label=label, params={"verbose": -1, "min_data_in_leaf": 5})
    return lgb.train({"num_leaves": 6, "learning_rate": 0.5, "num_threads": 1, "seed": 0,
                      "verbose": -1, "min_data_in_leaf": 5, **params}, d, rounds)


b = lgb_model({"objective": "binary"}, y_bin)
b.save_model(os.path.join(OUT, "lgb_binary.txt"))
p = b.predict(rows)
record("lgb_binary", "lgb_binary.txt", "lightgbm", 2, p, np.c_[1 - p, p], p > 0.5)

b = lgb_model({"objective": "multiclass", "num_class": 3}, y_multi)
b.save_model(os.path.join(OUT, "lgb_multiclass.txt"))
p = b.predict(rows)
record("lgb_multiclass", "lgb_multiclass.txt", "lightgbm", 3, p, p, p.argmax(1))

b = lgb_model({"objective": "multiclassova", "num_class": 3}, y_multi)
b.save_model(os.path.join(OUT, "lgb_multiclassova.txt"))
p = b.predict(rows)
record("lgb_multiclassova", "lgb_multiclassova.txt", "lightgbm", 3, p, p, p.argmax(1))

b = lgb_model({"objective": "regression"}, y_reg)
b.save_model(os.path.join(OUT, "lgb_regression.txt"))
record("lgb_regression", "lgb_regression.txt", "lightgbm", 1, b.predict(rows))

b = lgb_model({"objective": "regression", "linear_tree": True}, y_reg)
b.save_model(os.path.join(OUT, "lgb_linear.txt"))
record("lgb_linear", "lgb_linear.txt", "lightgbm", 1, b.predict(rows))

# ---- scikit-learn through Treelite checkpoints (scripts/ converts the same way)
Xc = np.nan_to_num(X)  # RF/ET/GB take no NaN; HGB does
rows_c = np.nan_to_num(rows)


def checkpoint(estimator, file):
    treelite.sklearn.import_model(estimator).serialize(os.path.join(OUT, file))


rf = ske.RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(Xc, y_bin)
checkpoint(rf, "sk_rf_binary.tl")
p = rf.predict_proba(rows_c)
record("sk_rf_binary", "sk_rf_binary.tl", "treelite_checkpoint", 2, p, p, rf.predict(rows_c))
models["sk_rf_binary"]["rows"] = "rows_no_nan"

gb = ske.GradientBoostingRegressor(n_estimators=4, max_depth=2, random_state=0).fit(Xc, y_reg)
checkpoint(gb, "sk_gb_regression.tl")
record("sk_gb_regression", "sk_gb_regression.tl", "treelite_checkpoint", 1, gb.predict(rows_c))
models["sk_gb_regression"]["rows"] = "rows_no_nan"

hgb = ske.HistGradientBoostingClassifier(max_iter=4, max_depth=3, random_state=0).fit(X, y_multi)
checkpoint(hgb, "sk_hgb_multiclass.tl")
p = hgb.predict_proba(rows)
record("sk_hgb_multiclass", "sk_hgb_multiclass.tl", "treelite_checkpoint", 3, p, p,
       hgb.predict(rows))

# ---- XGBoost's legacy binary format (model_type "xgboost"), by XGBoost 3.0.5
legacy_py = os.environ.get("XGB_LEGACY_PY",
                           os.path.expanduser("~/.cache/mmserve/xgboost-3.0.5-py"))
script = f"""
import json, sys, numpy as np, xgboost as xgb
assert xgb.__version__.startswith("3.0"), xgb.__version__
X = np.array(json.loads(sys.argv[1]), dtype=np.float32)
y = np.array(json.loads(sys.argv[2]))
rows = np.array(json.loads(sys.argv[3]), dtype=np.float32)
b = xgb.train({{"max_depth": 3, "eta": 0.5, "nthread": 1, "seed": 0,
               "objective": "binary:logistic"}}, xgb.DMatrix(X, label=y), 4)
b.save_model({os.path.join(OUT, "xgb_legacy.model")!r} + ".deprecated")
print(json.dumps(b.predict(xgb.DMatrix(rows)).tolist()))
"""
nan_list = lambda a: json.dumps(np.where(np.isnan(a), None, a).tolist())  # noqa: E731
env = dict(os.environ, PYTHONPATH=legacy_py)
out = subprocess.run(
    [sys.executable, "-c", script.replace("json.loads(sys.argv[1])",
                                          "[[np.nan if v is None else v for v in r] for r in json.loads(sys.argv[1])]")
     .replace("json.loads(sys.argv[3])",
              "[[np.nan if v is None else v for v in r] for r in json.loads(sys.argv[3])]"),
     nan_list(X), json.dumps(y_bin.tolist()), nan_list(rows)],
    env=env, check=True, capture_output=True, text=True)
os.replace(os.path.join(OUT, "xgb_legacy.model.deprecated"), os.path.join(OUT, "xgb_legacy.model"))
p = np.array(json.loads(out.stdout))
record("xgb_legacy", "xgb_legacy.model", "xgboost", 2, p, np.c_[1 - p, p], p > 0.5)

# ---- Bigger models for the footprint test (tree_model_test.cc, Footprint):
# only loaded, never compared, so no expected answers.
Xf = rng.random((3000, 8)).astype(np.float32)
yf = (Xf[:, 0] + np.sin(6 * Xf[:, 1]) + Xf[:, 2] * Xf[:, 3] + 0.2 * rng.standard_normal(3000))
b = xgb.train({"max_depth": 5, "eta": 0.3, "nthread": 1, "seed": 0,
               "objective": "reg:squarederror"}, xgb.DMatrix(Xf, label=yf), 25)
b.save_model(os.path.join(OUT, "footprint_xgb.ubj"))
d = lgb.Dataset(Xf, label=yf, params={"verbose": -1})
b = lgb.train({"num_leaves": 24, "learning_rate": 0.3, "num_threads": 1, "seed": 0,
               "verbose": -1}, d, 25)
b.save_model(os.path.join(OUT, "footprint_lgb.txt"))
rf = ske.RandomForestRegressor(n_estimators=3, max_depth=7, random_state=0).fit(Xf, yf)
checkpoint(rf, "footprint_sk_rf.tl")

with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump({
        "versions": {"xgboost": xgb.__version__, "lightgbm": lgb.__version__,
                     "treelite": treelite.__version__},
        "rows": np.where(np.isnan(rows), None, rows).astype(object).tolist(),
        "rows_no_nan": rows_c.astype(np.float64).tolist(),
        "models": models,
    }, f, indent=1)
print("wrote", len(models), "models to", OUT)
