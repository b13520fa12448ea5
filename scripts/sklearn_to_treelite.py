#!/usr/bin/env python3
"""Converts a scikit-learn tree ensemble into a model the FIL backend serves:
a Treelite checkpoint (model_type treelite_checkpoint) and its config.pbtxt.

  python scripts/sklearn_to_treelite.py ESTIMATOR.joblib REPO/NAME [options]

writes REPO/NAME/<version>/checkpoint.tl (treelite.sklearn.import_model, then
serialize) and REPO/NAME/config.pbtxt (backend "fil", input__0 FP32
[n_features], output__0 FP32, is_classifier / predict_proba / threshold), then
VERIFIES the conversion: it predicts with Treelite's GTIL (the library and the
code path the server runs, on FP32 rows, as the server receives them) and
compares with the estimator's own predict / predict_proba on the given rows
(--rows) or on random rows drawn around the model's split thresholds (with
missing values when the estimator accepts NaN). Classes must be equal; values
and probabilities within 1e-6 relative (absolute floor 1e-7 near 0). Any
difference is an error (exit 1) and nothing is left behind.

Supported (treelite.sklearn covers exactly these; this tool refuses anything
else, naming the list):
  RandomForestClassifier, RandomForestRegressor,
  ExtraTreesClassifier, ExtraTreesRegressor,
  GradientBoostingClassifier, GradientBoostingRegressor
      (init "zero" or the default Dummy estimator),
  HistGradientBoostingClassifier, HistGradientBoostingRegressor.
IsolationForest converts too, but FIL has no output rule for its score: refused.

Output rules (Triton FIL's, which the server follows):
  regressor                       is_classifier false; output dims [1]: [batch]
  classifier                      is_classifier true; dims [1]: the class INDEX
                                  (position in estimator.classes_) as FP32
  classifier, --predict-proba     dims [n_classes]: [batch, n_classes], the
                                  columns of predict_proba
The server answers class indices, not labels: the tool prints classes_ so a
client can map them back.

Needs scikit-learn, joblib, numpy and treelite (scripts/install-deps.sh --test
installs treelite 4.8.1, the version whose libtreelite the server runs).
"""

import argparse
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np

SUPPORTED = (
    "RandomForestClassifier", "RandomForestRegressor",
    "ExtraTreesClassifier", "ExtraTreesRegressor",
    "GradientBoostingClassifier", "GradientBoostingRegressor",
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
)
RTOL = 1e-6
ATOL = 1e-7


class ConversionError(Exception):
    pass


def check_supported(est):
    """Refuses what the tool does not convert exactly, saying what it takes."""
    name = type(est).__name__
    module = type(est).__module__
    if name not in SUPPORTED or not module.startswith("sklearn.ensemble"):
        raise ConversionError(
            f"{module}.{name} is not supported: the tool converts scikit-learn's "
            + ", ".join(SUPPORTED))
    if not hasattr(est, "n_features_in_"):
        raise ConversionError(f"{name} is not fitted")
    if name.startswith("GradientBoosting"):
        init = est.init
        if not (init is None or init == "zero" or type(init).__name__.startswith("Dummy")):
            raise ConversionError(
                f"{name} with init={type(init).__name__}: only init 'zero' or the default "
                "(a Dummy estimator) convert exactly")
    if getattr(est, "n_outputs_", 1) != 1:
        raise ConversionError(f"{name} with {est.n_outputs_} outputs: FIL serves one output")
    if hasattr(est, "classes_") and np.ndim(est.classes_) != 1:
        raise ConversionError(f"{name} is multi-output: FIL serves one output")
    if name.startswith("HistGradientBoosting") and getattr(est, "is_categorical_", None) is not None:
        if np.any(est.is_categorical_):
            raise ConversionError(f"{name} with categorical features is not supported")


def is_classifier(est):
    return hasattr(est, "predict_proba")


def num_classes(est):
    return len(est.classes_) if is_classifier(est) else 1


def accepts_nan(est):
    try:
        est.predict(np.full((1, est.n_features_in_), np.nan, np.float32))
        return True
    except ValueError:
        return False


def random_rows(tl_model, est, n_rows, seed):
    """Rows that reach many leaves: each feature drawn near the thresholds
    the trees split it on (Treelite's dump of the model), with NaN entries if
    the estimator accepts missing values."""
    import json
    import re

    n = est.n_features_in_
    thresholds = [[] for _ in range(n)]
    # Treelite 4.8 writes a non-finite threshold as nothing ("threshold":,).
    dump = re.sub(r'":(?=[,}])', '":null', tl_model.dump_as_json(pretty_print=False))
    for tree in json.loads(dump)["trees"]:
        for node in tree["nodes"]:
            t = node.get("threshold")
            if t is not None and "split_feature_id" in node and np.isfinite(t):
                thresholds[node["split_feature_id"]].append(t)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, n)).astype(np.float32)
    for f, ts in enumerate(thresholds):
        if ts:
            ts = np.asarray(ts, np.float64)
            spread = max(1e-3, float(ts.max() - ts.min()) / 20)
            x[:, f] = (rng.choice(ts, n_rows) + rng.normal(0, spread, n_rows)).astype(np.float32)
    if accepts_nan(est):
        x[rng.random(x.shape) < 0.05] = np.nan
    return x


def gtil_answer(tl_model, x, predict_proba, threshold, c):
    """FIL's answer from Treelite's GTIL (default predict: the postprocessor
    applied), as the server computes it, with the class index and the
    probabilities apart: (values or probabilities, class indices or None)."""
    import treelite

    g = np.asarray(treelite.gtil.predict(tl_model, x), dtype=np.float64)
    g = g.reshape(len(x), -1)
    if c == 1:
        return g[:, 0], None
    if g.shape[1] == 1:  # binary with one output: P(class 1)
        proba = np.stack([1.0 - g[:, 0], g[:, 0]], axis=1)
        return proba, (g[:, 0] > threshold).astype(np.int64)
    return g, np.argmax(g, axis=1).astype(np.int64)


def compare(what, got, want, rtol=RTOL, atol=ATOL):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise ConversionError(f"{what}: shape {got.shape}, the estimator's {want.shape}")
    bad = ~(np.abs(got - want) <= rtol * np.abs(want) + atol)
    bad |= np.isnan(got) != np.isnan(want)
    if bad.any():
        i = np.argwhere(bad)[0]
        raise ConversionError(
            f"{what}: {int(bad.sum())} of {bad.size} values differ beyond {rtol:g} relative "
            f"(first at {tuple(int(k) for k in i)}: converted {got[tuple(i)]!r}, estimator "
            f"{want[tuple(i)]!r})")


def verify(est, tl_model, x, predict_proba, threshold):
    """Raises ConversionError unless GTIL answers as the estimator on x."""
    c = num_classes(est)
    values, classes = gtil_answer(tl_model, x, predict_proba, threshold, c)
    if c == 1:
        compare("predict", values, est.predict(x))
        return
    proba = est.predict_proba(x)
    compare("predict_proba", values, proba)
    if threshold == 0.5 or values.shape[1] > 2 or classes is None:
        want = np.searchsorted(est.classes_, est.predict(x))
    else:  # a binary threshold other than predict()'s
        want = (proba[:, 1] > threshold).astype(np.int64)
    if classes is not None and not np.array_equal(classes, want):
        i = int(np.argmax(classes != want))
        raise ConversionError(
            f"predict: {int((classes != want).sum())} of {len(x)} classes differ (first at row "
            f"{i}: converted class index {classes[i]}, estimator {want[i]})")


def fil_config(name, n_features, c, predict_proba, threshold, max_batch_size, instances):
    params = [("model_type", "treelite_checkpoint"),
              ("is_classifier", "true" if c > 1 else "false")]
    if c > 1:
        params += [("predict_proba", "true" if predict_proba else "false"),
                   ("threshold", repr(float(threshold)))]
    dims = c if predict_proba else 1
    return (f'name: "{name}"\nbackend: "fil"\nmax_batch_size: {max_batch_size}\n'
            f'input [ {{ name: "input__0" data_type: TYPE_FP32 dims: [ {n_features} ] }} ]\n'
            f'output [ {{ name: "output__0" data_type: TYPE_FP32 dims: [ {dims} ] }} ]\n'
            f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"
            "parameters [\n"
            + ",\n".join(f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in params)
            + "\n]\n")


def convert(est, out_dir, *, version=1, predict_proba=False, threshold=0.5, rows=None,
            check_rows=2000, seed=0, max_batch_size=8192, instances=1, name=None, log=print):
    """Converts `est` into out_dir (a model folder of a repository) and
    verifies it. Returns the config text. Raises ConversionError."""
    import treelite
    import treelite.sklearn

    check_supported(est)
    c = num_classes(est)
    if predict_proba and c == 1:
        raise ConversionError(f"--predict-proba: {type(est).__name__} is a regressor")
    if c == 1 and threshold != 0.5:
        raise ConversionError(f"--threshold: {type(est).__name__} is a regressor")
    if c > 2 and threshold != 0.5:
        raise ConversionError("--threshold applies to binary classifiers only")
    try:
        tl_model = treelite.sklearn.import_model(est)
    except Exception as e:  # noqa: BLE001 - treelite's reason, said plainly
        raise ConversionError(f"treelite.sklearn.import_model refused {type(est).__name__}: {e}")
    out_dir = pathlib.Path(out_dir)
    name = name or out_dir.name
    n = int(est.n_features_in_)
    # Write aside, read the checkpoint back (what the server reads), verify,
    # then move into place: a failed check leaves nothing behind.
    staging = pathlib.Path(tempfile.mkdtemp(prefix="sklearn_to_treelite-"))
    try:
        path = staging / "checkpoint.tl"
        tl_model.serialize(str(path))
        loaded = treelite.Model.deserialize(str(path))
        if loaded.num_feature != n:
            raise ConversionError(f"the checkpoint has {loaded.num_feature} features, "
                                  f"the estimator {n}")
        if rows is None:
            x = random_rows(loaded, est, check_rows, seed)
            source = f"{len(x)} random rows"
        else:
            x = np.ascontiguousarray(rows, dtype=np.float32)
            if x.ndim != 2 or x.shape[1] != n:
                raise ConversionError(f"--rows: expected [rows, {n}], got {list(x.shape)}")
            source = f"{len(x)} given rows"
        verify(est, loaded, x, predict_proba, threshold)
        config = fil_config(name, n, c, predict_proba, threshold, max_batch_size, instances)
        target = out_dir / str(version) / "checkpoint.tl"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)  # a polling server never reads half a file
        (out_dir / "config.pbtxt").write_text(config)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    kind = "classifier" if c > 1 else "regressor"
    log(f"{target}: {type(est).__name__} ({kind}, {n} features, {loaded.num_tree} trees), "
        f"{target.stat().st_size} bytes; verified against the estimator on {source}")
    if c > 1:
        log(f"class indices -> labels: {est.classes_.tolist()}")
    return config


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("estimator", type=pathlib.Path,
                        help="a fitted estimator saved with joblib.dump or pickle")
    parser.add_argument("out", type=pathlib.Path,
                        help="the model's folder in a repository (its name is the model name)")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--name", help="model name in config.pbtxt (default: the folder's)")
    parser.add_argument("--predict-proba", action="store_true",
                        help="classifiers: answer predict_proba's columns instead of the class")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="binary classifiers: class 1 when P(1) > threshold (default 0.5)")
    parser.add_argument("--rows", type=pathlib.Path,
                        help="a .npy of rows [n, n_features] to verify on (default: random rows)")
    parser.add_argument("--check-rows", type=int, default=2000,
                        help="how many random rows to verify on (default 2000)")
    parser.add_argument("--max-batch-size", type=int, default=8192)
    parser.add_argument("--instances", type=int, default=1, help="instance_group count")
    args = parser.parse_args(argv)
    if args.version < 1:
        parser.error("--version must be a positive integer")

    import joblib

    try:
        est = joblib.load(args.estimator)
    except Exception as e:  # noqa: BLE001
        print(f"error: cannot load {args.estimator}: {e}", file=sys.stderr)
        return 1
    rows = np.load(args.rows) if args.rows else None
    try:
        convert(est, args.out, version=args.version, predict_proba=args.predict_proba,
                threshold=args.threshold, rows=rows, check_rows=args.check_rows,
                max_batch_size=args.max_batch_size, instances=args.instances, name=args.name)
    except ConversionError as e:
        print(f"error: {args.estimator}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
