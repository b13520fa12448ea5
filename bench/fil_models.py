#!/usr/bin/env python3
"""bench/fil_models.py: the XGBoost models of issue 21's benchmark (bench/fil.sh).

  fil_models.py engine OUT    the engine model: one binary classifier (binary:logistic),
                              500 trees, depth 8, 30 features, saved as UBJ, in
                              OUT/mmserve/xgb_engine (backend "fil", predict_proba: output
                              FP32 [2] = (1 - p, p)) and OUT/triton/xgb_engine (Triton's
                              Python backend running the same file with xgboost, nthread=1,
                              the same answer). Also OUT/rows.f32 (1,000 x 30 FP32 rows), the
                              request bodies (binary tensor extension) for 1 and 1,000 rows
                              (OUT/body_b{1,1000}.bin, .len = the JSON header's length) and
                              OUT/expected_b{1,1000}.f32 (xgboost's predict_proba of them).
  fil_models.py many OUT      issue 21's per-customer models: COUNT (5,000) binary classifiers
                              of 100 trees (depth 6, 30 features) in OUT/repo/c0000..., plus
                              OUT/repo/warm (one more, for the server's warm-up), each with
                              the engine model's config (predict_proba, FP32 [2]). Also
                              OUT/row.f32 (the one 30-feature row every request sends),
                              OUT/expected.f32 (each model's p on it, from xgboost's own
                              predict, in model order, warm last) and OUT/models.json.

How 5,000 distinct models are made without training 5,000 (too slow on 2 cores): ONE base
is trained (XGBoost's hist method, seeded), and every model is that base's UBJ file with three
edits made in place, in the typed arrays of each tree (big-endian float32/int32 blocks after
`[$d#L` / `[$l#L`), so that every model has exactly the base's structure (its nodes, hence
the same footprint, which keeps the budget "10% of the models" exact and Belady's optimum
well defined) but its own function:
  - split_indices: the features permuted by a per-model random permutation of the 30;
  - split_conditions of split nodes: thresholds + N(0, 0.05) noise;
  - split_conditions (and base_weights) of leaves: scaled by a per-model factor in
    [0.7, 1.3] plus N(0, 0.01) noise per leaf.
Every model is then loaded back by xgboost itself to compute its expected answer (so a file
xgboost could not read fails here), and the answers are checked to be distinct.

The output folder is a cache: `many` writes OUT/.complete with its parameters and returns at
once when they match.
"""
import argparse
import json
import os
import re
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np

try:
    import xgboost as xgb
except ImportError:
    sys.exit("fil_models.py needs xgboost (scripts/install-deps.sh --test installs xgboost-cpu "
             "into .venv; or set BENCH_PYTHON to a Python that has it)")

FEATURES = 30


def config_pbtxt(name, max_batch, backend="fil"):
    lines = [f'name: "{name}"', f'backend: "{backend}"', f"max_batch_size: {max_batch}",
             f'input [ {{ name: "input__0" data_type: TYPE_FP32 dims: [ {FEATURES} ] }} ]',
             'output [ { name: "output__0" data_type: TYPE_FP32 dims: [ 2 ] } ]',
             "instance_group [ { count: 1 kind: KIND_CPU } ]"]
    if backend == "fil":
        lines.append("parameters [\n"
                     '  { key: "model_type" value: { string_value: "xgboost_ubj" } },\n'
                     '  { key: "is_classifier" value: { string_value: "true" } },\n'
                     '  { key: "predict_proba" value: { string_value: "true" } },\n'
                     '  { key: "threshold" value: { string_value: "0.5" } }\n'
                     "]")
    return "\n".join(lines) + "\n"


# Triton's Python backend: the same UBJ file through xgboost's own predict,
# one thread, the same (1 - p, p) answer as FIL's predict_proba.
TRITON_MODEL_PY = '''\
import os

import numpy as np
import triton_python_backend_utils as pb_utils
import xgboost as xgb


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], args["model_version"], "xgboost.ubj")
        self.booster = xgb.Booster(model_file=path)
        self.booster.set_param({"nthread": 1})

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "input__0").as_numpy()
            p = self.booster.inplace_predict(x).astype(np.float32)
            out = np.stack([1.0 - p, p], axis=1).astype(np.float32)
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("output__0", out)]))
        return responses
'''


def train(rows, depth, trees, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, FEATURES)).astype(np.float32)
    w = rng.standard_normal(FEATURES)
    logit = x @ w + 0.8 * np.sin(3 * x[:, 0]) * x[:, 1] + rng.standard_normal(rows)
    y = (logit > 0).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": 1,
              "tree_method": "hist", "min_child_weight": 0, "seed": seed}
    return xgb.train(params, xgb.DMatrix(x, y), trees)


def body(rows):
    """A KServe v2 request with Triton's binary tensor extension both ways."""
    header = json.dumps({
        "inputs": [{"name": "input__0", "shape": list(rows.shape), "datatype": "FP32",
                    "parameters": {"binary_data_size": rows.nbytes}}],
        "outputs": [{"name": "output__0", "parameters": {"binary_data": True}}],
    }, separators=(",", ":")).encode()
    return header, header + rows.tobytes()


def proba(booster, rows):
    p = booster.inplace_predict(rows).astype(np.float32)
    return np.stack([np.float32(1) - p, p], axis=1).astype(np.float32)


def engine(out, args):
    t0 = time.monotonic()
    booster = train(20000, args.depth, args.trees, args.seed)
    raw = booster.save_raw("ubj")
    for server, backend in (("mmserve", "fil"), ("triton", "python")):
        d = out / server / "xgb_engine"
        shutil.rmtree(d, ignore_errors=True)
        (d / "1").mkdir(parents=True)
        (d / "1" / "xgboost.ubj").write_bytes(raw)
        (d / "config.pbtxt").write_text(config_pbtxt("xgb_engine", 1000, backend))
        if backend == "python":
            (d / "1" / "model.py").write_text(TRITON_MODEL_PY)
    rng = np.random.default_rng(args.seed + 1)
    rows = rng.standard_normal((1000, FEATURES)).astype(np.float32)
    (out / "rows.f32").write_bytes(rows.tobytes())
    for n in (1, 1000):
        header, b = body(rows[:n])
        (out / f"body_b{n}.bin").write_bytes(b)
        (out / f"body_b{n}.len").write_text(str(len(header)))
        (out / f"expected_b{n}.f32").write_bytes(proba(booster, rows[:n]).tobytes())
    nodes = sum(int(t["tree_param"]["num_nodes"])
                for t in json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]
                ["model"]["trees"])
    print(f"engine trees={booster.num_boosted_rounds()} depth={args.depth} nodes={nodes} "
          f"features={FEATURES} ubj_bytes={len(raw)} xgboost={xgb.__version__} "
          f"seconds={time.monotonic() - t0:.1f}")


# ------------------------------------------------------------------ many


def typed_arrays(raw, key, marker):
    """(offset, count) of every UBJ typed array `key` of element type `marker`
    (b'd' float32, b'l' int32), in file order (one per tree)."""
    pattern = re.compile(re.escape(key) + rb"\[\$" + marker + rb"#L(.{8})", re.S)
    return [(m.end(), struct.unpack(">q", m.group(1))[0]) for m in pattern.finditer(raw)]


class Template:
    """The base model's UBJ bytes and where each tree's arrays are."""

    def __init__(self, raw):
        self.raw = bytes(raw)
        buf = np.frombuffer(self.raw, dtype=np.uint8)
        self.cond = typed_arrays(self.raw, b"split_conditions", b"d")
        self.weights = typed_arrays(self.raw, b"base_weights", b"d")
        self.index = typed_arrays(self.raw, b"split_indices", b"l")
        left = typed_arrays(self.raw, b"left_children", b"l")
        if not (len(self.cond) == len(self.weights) == len(self.index) == len(left) > 0):
            sys.exit("the base model's UBJ layout is not the one expected (split_conditions, "
                     "base_weights, split_indices, left_children typed arrays per tree)")
        self.leaf = [np.frombuffer(buf[o:o + 4 * n].tobytes(), ">i4") == -1 for o, n in left]

    def derive(self, k, seed):
        rng = np.random.default_rng([seed, k])
        perm = rng.permutation(FEATURES).astype(">i4")
        scale = rng.uniform(0.7, 1.3)
        out = bytearray(self.raw)
        for (co, n), (wo, wn), (io, inn), leaf in zip(self.cond, self.weights, self.index,
                                                      self.leaf):
            cond = np.frombuffer(self.raw, ">f4", n, co).astype(np.float32)
            noise_leaf = rng.normal(0, 0.01, n).astype(np.float32)
            noise_split = rng.normal(0, 0.05, n).astype(np.float32)
            cond = np.where(leaf, cond * np.float32(scale) + noise_leaf, cond + noise_split)
            out[co:co + 4 * n] = cond.astype(">f4").tobytes()
            weights = np.frombuffer(self.raw, ">f4", wn, wo).astype(np.float32)
            weights = np.where(leaf, cond, weights)  # a leaf's weight is its value
            out[wo:wo + 4 * wn] = weights.astype(">f4").tobytes()
            index = np.frombuffer(self.raw, ">i4", inn, io)
            out[io:io + 4 * inn] = perm[index].astype(">i4").tobytes()
        return bytes(out)


def many(out, args):
    params = {"count": args.count, "trees": args.trees, "depth": args.depth, "seed": args.seed,
              "xgboost": xgb.__version__, "version": 1}
    stamp = out / ".complete"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        print(f"many: cached in {out} ({json.dumps(params)})")
        return
    t0 = time.monotonic()
    shutil.rmtree(out, ignore_errors=True)
    repo = out / "repo"
    repo.mkdir(parents=True)
    base = train(20000, args.depth, args.trees, args.seed)
    template = Template(base.save_raw("ubj"))
    row = np.random.default_rng(args.seed + 2).standard_normal((1, FEATURES)).astype(np.float32)
    (out / "row.f32").write_bytes(row.tobytes())
    names = [f"c{i:04d}" for i in range(args.count)] + ["warm"]
    expected = np.empty(len(names), np.float32)
    booster = xgb.Booster()
    for i, name in enumerate(names):
        raw = template.derive(i, args.seed)
        d = repo / name
        (d / "1").mkdir(parents=True)
        (d / "1" / "xgboost.ubj").write_bytes(raw)
        (d / "config.pbtxt").write_text(config_pbtxt(name, 64))
        booster.load_model(bytearray(raw))
        booster.set_param({"nthread": 1})
        expected[i] = booster.inplace_predict(row)[0]
    distinct = len(np.unique(expected))
    if distinct < len(names) * 0.99:
        sys.exit(f"only {distinct} distinct answers among {len(names)} models")
    (out / "expected.f32").write_bytes(expected.tobytes())
    info = dict(params, models=names[:-1], warm="warm", distinct_answers=distinct,
                ubj_bytes=len(template.raw),
                nodes=int(sum(n for _, n in template.cond)),
                p_min=float(expected.min()), p_max=float(expected.max()))
    (out / "models.json").write_text(json.dumps(info))
    stamp.write_text(json.dumps(params))
    print(f"many: {len(names)} models ({args.count} + warm) in {out}: {info['nodes']} nodes, "
          f"UBJ {len(template.raw)} B each, {distinct} distinct answers, "
          f"{time.monotonic() - t0:.0f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["engine", "many"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--trees", type=int)
    ap.add_argument("--depth", type=int)
    ap.add_argument("--seed", type=int, default=21)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "engine":
        args.trees, args.depth = args.trees or 500, args.depth or 8
        engine(args.out, args)
    else:
        args.trees, args.depth = args.trees or 100, args.depth or 6
        many(args.out, args)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
