#!/usr/bin/env python3
"""Generates mmserve's example models.

Default: writes the committed repository examples/models/ (add_sub,
mlp_classifier, string_int, image_cnn). Weights come from a fixed seed, so a
rerun produces byte-identical files.

  python scripts/make_example_models.py                 # examples/models
  python scripts/make_example_models.py --out DIR       # the same models elsewhere
  python scripts/make_example_models.py --all-types DIR # DIR/identity_all_types
  python scripts/make_example_models.py --testdata DIR  # extra models for unit tests
  python scripts/make_example_models.py --offset DIR NAME VERSION K [--width N]
        # DIR/NAME/VERSION/model.onnx: y = x + K (x, y FP32 [N]), config if absent
  python scripts/make_example_models.py --many DIR COUNT [--width N]
        # DIR/m0000 ... : COUNT distinct offset models (K = index), for benchmarks
  python scripts/make_example_models.py --sklearn DIR
        # DIR/sklearn_iris/1/model.joblib: the scikit-learn pipeline the
        # example Python model serves (its model.py and config are committed)
  python scripts/make_example_models.py --torch [--out DIR]
        # DIR/image_cnn_torch (default examples/models): a small CNN built
        # from torch.nn (conv/batch-norm/relu/pool/linear, fixed seed, ~100 KB),
        # scripted with torch.jit.script and saved with torch.jit.save, with its
        # config.pbtxt (platform "pytorch_libtorch"). torch.jit.save stamps every
        # archive with a fresh serialization id, so the file is rewritten only
        # when its code or weights changed: a rerun leaves git clean.
  python scripts/make_example_models.py --fil [--out DIR]
        # DIR/credit_risk_xgboost (default examples/models): a binary XGBoost
        # classifier (xgboost_ubj, predict_proba: [P(good), P(default)]) on
        # synthetic credit-risk data with missing values, and
        # DIR/house_price_lightgbm: a LightGBM regressor (model.txt), each
        # with its Triton FIL config.pbtxt (backend "fil"). Fixed seeds, one
        # thread: a rerun writes the same bytes.

Needs the `onnx` and `numpy` packages only (no ONNX Runtime); --sklearn needs
scikit-learn and joblib (the versions pinned in scripts/requirements-test.txt,
which load the pickle the example commits); --torch needs PyTorch (torch
2.15.0, the version whose libtorch the server runs; scripts/install-deps.sh
--test installs it); --fil needs xgboost 3.2.0 and lightgbm 4.7.0 (the
versions whose libraries the server runs; install-deps.sh --test installs
them).
"""

import argparse
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, checker, helper, numpy_helper

# ONNX Runtime 1.30 reads IR 9 / opset 17 models; onnx 1.23 would default to
# newer versions, so pin both.
IR_VERSION = 9
OPSET = 17
SEED = 20240611

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _model(graph, opset=OPSET):
    model = helper.make_model(
        graph,
        producer_name="mmserve/make_example_models.py",
        opset_imports=[helper.make_opsetid("", opset)],
    )
    model.ir_version = IR_VERSION
    checker.check_model(model, full_check=True)
    return model


def _save(model, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _write_repo_model(out, name, model, config=None):
    _save(model, out / name / "1" / "model.onnx")
    config_path = out / name / "config.pbtxt"
    if config is not None:
        config_path.write_text(config)
    elif config_path.exists():
        config_path.unlink()


def _init(name, array):
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


# ----------------------------------------------------------------- models


def add_sub():
    a = helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, [4])
    b = helper.make_tensor_value_info("INPUT1", TensorProto.FLOAT, [4])
    s = helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, [4])
    d = helper.make_tensor_value_info("OUTPUT1", TensorProto.FLOAT, [4])
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
        "add_sub",
        [a, b],
        [s, d],
    )
    config = """name: "add_sub"
platform: "onnxruntime_onnx"
max_batch_size: 0
input [
  { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] }
]
"""
    return _model(graph), config


def mlp_classifier(rng, hidden=32, extra_layers=0, name="mlp_classifier"):
    """input FP32 [batch,16] -> Gemm(hidden) Relu [-> Gemm(hidden) Relu]*extra
    -> Gemm(10) Softmax. The defaults are the example; wider and deeper ones
    (--mlp) give benchmarks a model whose execution, not I/O, dominates."""
    w1 = rng.standard_normal((16, hidden)).astype(np.float32) * np.float32(0.25)
    b1 = rng.standard_normal((hidden,)).astype(np.float32) * np.float32(0.1)
    w2 = rng.standard_normal((hidden, 10)).astype(np.float32) * np.float32(0.25)
    b2 = rng.standard_normal((10,)).astype(np.float32) * np.float32(0.1)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 16])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["a1"])]
    inits = [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2)]
    last = "a1"
    for i in range(extra_layers):
        scale = np.float32(1.0 / np.sqrt(hidden))
        inits.append(_init(f"wx{i}", rng.standard_normal((hidden, hidden)).astype(np.float32) * scale))
        inits.append(_init(f"bx{i}", np.zeros((hidden,), np.float32)))
        nodes.append(helper.make_node("Gemm", [last, f"wx{i}", f"bx{i}"], [f"hx{i}"]))
        nodes.append(helper.make_node("Relu", [f"hx{i}"], [f"ax{i}"]))
        last = f"ax{i}"
    nodes += [helper.make_node("Gemm", [last, "w2", "b2"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    graph = helper.make_graph(nodes, name, [x], [y], initializer=inits)
    config = f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [
  {{ name: "input" data_type: TYPE_FP32 dims: [ 16 ] }}
]
output [
  {{ name: "probabilities" data_type: TYPE_FP32 dims: [ 10 ] }}
]
instance_group [
  {{ count: 1 kind: KIND_CPU }}
]
"""
    return _model(graph), config


def string_int():
    # No config.pbtxt: the server auto-completes it from the model.
    tokens = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["n"])
    text = helper.make_tensor_value_info("text", TensorProto.STRING, ["m"])
    doubled = helper.make_tensor_value_info("tokens_doubled", TensorProto.INT64, ["n"])
    upper = helper.make_tensor_value_info("text_upper", TensorProto.STRING, ["m"])
    two = helper.make_tensor("two", TensorProto.INT64, [], [2])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["tokens", "two"], ["tokens_doubled"]),
            # "C.UTF-8" exists on every glibc >= 2.35 system, unlike "en_US.UTF-8"
            # (ONNX Runtime's default), which minimal containers lack.
            helper.make_node(
                "StringNormalizer",
                ["text"],
                ["text_upper"],
                case_change_action="UPPER",
                is_case_sensitive=1,
                locale="C.UTF-8",
            ),
        ],
        "string_int",
        [tokens, text],
        [doubled, upper],
        initializer=[two],
    )
    return _model(graph), None


def image_cnn(rng):
    def conv_weights(out_c, in_c):
        fan_in = in_c * 9
        w = rng.standard_normal((out_c, in_c, 3, 3)).astype(np.float32)
        w *= np.float32(np.sqrt(2.0 / fan_in))
        b = (rng.standard_normal((out_c,)) * 0.01).astype(np.float32)
        return w, b

    channels = [3, 16, 32, 64]
    nodes, inits = [], []
    prev = "image"
    for i in range(3):
        w, b = conv_weights(channels[i + 1], channels[i])
        inits += [_init(f"conv{i}_w", w), _init(f"conv{i}_b", b)]
        nodes.append(
            helper.make_node(
                "Conv", [prev, f"conv{i}_w", f"conv{i}_b"], [f"conv{i}"], pads=[1, 1, 1, 1]
            )
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        prev = f"relu{i}"
        if i < 2:
            nodes.append(
                helper.make_node("MaxPool", [prev], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2])
            )
            prev = f"pool{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    fc_w = (rng.standard_normal((64, 10)) * np.sqrt(1.0 / 64)).astype(np.float32)
    fc_b = np.zeros((10,), np.float32)
    inits += [_init("fc_w", fc_w), _init("fc_b", fc_b)]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"]))
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    graph = helper.make_graph(nodes, "image_cnn", [x], [y], initializer=inits)
    config = """name: "image_cnn"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  { name: "image" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] }
]
output [
  { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] }
]
instance_group [
  { count: 1 kind: KIND_CPU }
]
"""
    return _model(graph), config


# KServe dtype suffix -> ONNX element type, for every KServe dtype ONNX has.
ALL_TYPES = [
    ("bool", TensorProto.BOOL),
    ("uint8", TensorProto.UINT8),
    ("uint16", TensorProto.UINT16),
    ("uint32", TensorProto.UINT32),
    ("uint64", TensorProto.UINT64),
    ("int8", TensorProto.INT8),
    ("int16", TensorProto.INT16),
    ("int32", TensorProto.INT32),
    ("int64", TensorProto.INT64),
    ("fp16", TensorProto.FLOAT16),
    ("fp32", TensorProto.FLOAT),
    ("fp64", TensorProto.DOUBLE),
    ("bytes", TensorProto.STRING),
    ("bf16", TensorProto.BFLOAT16),
]


def identity_all_types():
    """One Identity per dtype: input "in_<t>" -> output "out_<t>", shape [-1]."""
    inputs, outputs, nodes = [], [], []
    for suffix, elem in ALL_TYPES:
        inputs.append(helper.make_tensor_value_info(f"in_{suffix}", elem, [f"n_{suffix}"]))
        outputs.append(helper.make_tensor_value_info(f"out_{suffix}", elem, [f"n_{suffix}"]))
        nodes.append(helper.make_node("Identity", [f"in_{suffix}"], [f"out_{suffix}"]))
    graph = helper.make_graph(nodes, "identity_all_types", inputs, outputs)
    return _model(graph)


def unsupported_type():
    """A model ONNX Runtime loads but mmserve cannot serve: a float8 tensor."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT8E4M3FN, ["n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT8E4M3FN, ["n"])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "unsupported_type", [x], [y])
    return _model(graph, opset=19)


def fixed_batch():
    """An input whose first dim is fixed: cannot be served with max_batch_size > 0."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "fixed_batch", [x], [y])
    return _model(graph)


def misdeclared_output():
    """An output whose declared shape is not what the graph computes: y is
    declared [n] like x, but is x twice over ([2n]). ONNX Runtime loads it
    leniently; a server that sized y's buffer from the declaration must
    still answer with the computed [2n]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
    graph = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["y"], axis=0)],
                              "misdeclared_output", [x], [y])
    return _model(graph)


# ------------------------------------------------------------------- main


def offset_model(k, width=4):
    """y = x @ I + k: x and y FP32 [width]. The identity weight (width^2
    floats) gives the model a size; the result is exact: y == x + k."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [width])
    eye = np.eye(width, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Unsqueeze", ["x", "axes0"], ["x2"]),
         helper.make_node("MatMul", ["x2", "eye"], ["m"]),
         helper.make_node("Squeeze", ["m", "axes0"], ["m1"]),
         helper.make_node("Add", ["m1", "k"], ["y"])],
        "offset", [x], [y],
        [_init("eye", eye), _init("k", np.array([k], np.float32)),
         _init("axes0", np.array([0], np.int64))])
    return _model(graph)


OFFSET_CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
input {{ name: "x" data_type: TYPE_FP32 dims: [ {width} ] }}
output {{ name: "y" data_type: TYPE_FP32 dims: [ {width} ] }}
"""


def write_offset(out, name, version, k, width=4):
    _save(offset_model(k, width), out / name / str(version) / "model.onnx")
    config = out / name / "config.pbtxt"
    if not config.exists():
        config.write_text(OFFSET_CONFIG.format(name=name, width=width))


def write_sklearn_iris(out):
    """A StandardScaler + LogisticRegression pipeline on the iris data (shipped
    with scikit-learn: no download), saved with joblib."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    pipeline.fit(x.astype(np.float32), y)
    path = out / "sklearn_iris" / "1" / "model.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, path)
    print(f"{path}: {path.stat().st_size} bytes, training accuracy {pipeline.score(x, y):.3f}")


IMAGE_CNN_TORCH_CONFIG = """name: "image_cnn_torch"
platform: "pytorch_libtorch"
max_batch_size: 8
input [
  { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3, 32, 32 ] }
]
output [
  { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 10 ] }
]
instance_group [
  { count: 1 kind: KIND_CPU }
]
dynamic_batching { max_queue_delay_microseconds: 100 }
"""


def image_cnn_torch_module(seed=SEED):
    """The example TorchScript CNN: [N,3,H,W] FP32 images -> [N,10] FP32
    logits. Three conv(3x3, no bias)/batch-norm/relu stages (16, 32, 64
    channels, 2x2 max-pool after the first two), a global average pool and a
    linear layer: 24,570 parameters (~100 KB). Weights from torch.manual_seed;
    the batch-norm statistics are set from the same generator so that they are
    not the identity. Returns the torch.jit.script'ed module in eval mode."""
    import torch
    from torch import nn

    class ImageCnn(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            channels = [3, 16, 32, 64]
            for i in range(3):
                layers += [nn.Conv2d(channels[i], channels[i + 1], 3, padding=1, bias=False),
                           nn.BatchNorm2d(channels[i + 1]), nn.ReLU()]
                if i < 2:
                    layers.append(nn.MaxPool2d(2))
            layers.append(nn.AdaptiveAvgPool2d(1))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(torch.flatten(self.features(x), 1))

    torch.manual_seed(seed)
    model = ImageCnn()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.8, 1.2)
                m.bias.uniform_(-0.1, 0.1)
    return torch.jit.script(model.eval())


def _same_torchscript(path, module):
    """True if `path` holds `module`'s code and weights already."""
    import torch

    if not path.exists():
        return False
    try:
        old = torch.jit.load(str(path))
    except Exception:  # noqa: BLE001 - an unreadable file is simply rewritten
        return False
    if old.code != module.code:
        return False
    a, b = old.state_dict(), module.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def write_image_cnn_torch(out):
    """out/image_cnn_torch/{config.pbtxt,1/model.pt}."""
    import warnings

    # torch.jit.script/save/load say TorchScript is deprecated in favour of
    # torch.export; Triton's PyTorch backend (and ours) serves TorchScript.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = image_cnn_torch_module()
        path = out / "image_cnn_torch" / "1" / "model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        if _same_torchscript(path, module):
            print(f"{path}: unchanged")
        else:
            module.save(str(path))
            print(f"{path}: {path.stat().st_size} bytes")
    (out / "image_cnn_torch" / "config.pbtxt").write_text(IMAGE_CNN_TORCH_CONFIG)


CREDIT_FEATURES = ["income_k", "debt_to_income", "age", "credit_history_months",
                   "late_payments_2y", "loan_amount_k", "employment_years", "open_accounts"]
HOUSE_FEATURES = ["area_m2", "bedrooms", "age_years", "distance_to_center_km", "lot_m2",
                  "quality_1_10"]


def _fil_config(name, model_type, features, output_dims, params, comment):
    rows = "\n".join(f"#   {i}: {f}" for i, f in enumerate(features))
    params_text = ",\n".join(f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }}'
                             for k, v in params)
    return f"""# {comment}
# input__0 columns (FP32; NaN = missing):
{rows}
name: "{name}"
backend: "fil"
max_batch_size: 4096
input [
  {{ name: "input__0" data_type: TYPE_FP32 dims: [ {len(features)} ] }}
]
output [
  {{ name: "output__0" data_type: TYPE_FP32 dims: [ {output_dims} ] }}
]
instance_group [
  {{ count: 1 kind: KIND_CPU }}
]
parameters [
  {{ key: "model_type" value: {{ string_value: "{model_type}" }} }},
{params_text}
]
dynamic_batching {{ max_queue_delay_microseconds: 100 }}
"""


def credit_data(rng, n):
    """Synthetic applicants: FP32 [n, 8] (some entries missing) and a 0/1
    default label drawn from a logistic model of the features."""
    income = rng.lognormal(3.9, 0.45, n)                     # thousands a year
    dti = np.clip(rng.beta(2.0, 5.0, n) * 1.2, 0, 1.5)       # debt / income
    age = rng.integers(19, 80, n).astype(np.float64)
    history = np.clip(rng.normal((age - 18) * 7, 30), 0, None)
    late = rng.poisson(0.4 + 2.0 * dti, n).astype(np.float64)
    loan = rng.lognormal(2.8, 0.7, n)
    employed = np.clip(rng.normal((age - 20) / 3, 4), 0, None)
    accounts = rng.poisson(4, n).astype(np.float64)
    logit = (-2.2 + 3.0 * dti + 0.55 * late - 0.012 * history - 0.008 * income
             + 0.012 * loan - 0.04 * employed + 0.05 * np.abs(accounts - 5))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    x = np.stack([income, dti, age, history, late, loan, employed, accounts], 1).astype(np.float32)
    x[rng.random(x.shape) < 0.03] = np.nan  # applicants who left a field blank
    return x, y


def house_data(rng, n):
    """Synthetic houses: FP32 [n, 6] and a price in thousands."""
    area = rng.normal(110, 35, n).clip(25, None)
    bedrooms = np.clip(np.round(area / 35 + rng.normal(0, 0.7, n)), 1, 7)
    age = rng.integers(0, 120, n).astype(np.float64)
    distance = rng.gamma(2.0, 4.0, n)
    lot = np.where(rng.random(n) < 0.4, 0, rng.lognormal(5.5, 0.6, n))
    quality = rng.integers(1, 11, n).astype(np.float64)
    price = (2.6 * area + 12 * bedrooms - 0.5 * age - 9 * np.sqrt(distance) * 4
             + 0.05 * lot + 18 * quality + rng.normal(0, 25, n))
    x = np.stack([area, bedrooms, age, distance, lot, quality], 1).astype(np.float32)
    x[:, 4][rng.random(n) < 0.05] = np.nan
    return x, price.clip(30, None)


def write_fil_examples(out):
    """out/credit_risk_xgboost/{config.pbtxt,1/xgboost.ubj} and
    out/house_price_lightgbm/{config.pbtxt,1/model.txt}."""
    import lightgbm as lgb
    import xgboost as xgb

    rng = np.random.default_rng(SEED)
    x, y = credit_data(rng, 6000)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.15,
                         "nthread": 1, "seed": 0, "tree_method": "hist",
                         "eval_metric": "logloss"}, xgb.DMatrix(x, y, missing=np.nan), 60)
    path = out / "credit_risk_xgboost" / "1" / "xgboost.ubj"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(booster.save_raw("ubj")))
    (out / "credit_risk_xgboost" / "config.pbtxt").write_text(_fil_config(
        "credit_risk_xgboost", "xgboost_ubj", CREDIT_FEATURES, 2,
        [("is_classifier", "true"), ("predict_proba", "true"), ("threshold", "0.5")],
        "XGBoost binary classifier (scripts/make_example_models.py --fil): output__0 is\n"
        "# [P(repaid), P(default)] per applicant, as XGBClassifier.predict_proba."))
    p = booster.predict(xgb.DMatrix(x, missing=np.nan))
    print(f"{path}: {path.stat().st_size} bytes, 60 trees, training accuracy "
          f"{np.mean((p > 0.5) == y):.3f}")

    x, y = house_data(rng, 5000)
    params = {"objective": "regression", "num_leaves": 15, "learning_rate": 0.15,
              "num_threads": 1, "deterministic": True, "seed": 0, "verbose": -1}
    model = lgb.train(params, lgb.Dataset(x, y, params={"verbose": -1}), 60)
    path = out / "house_price_lightgbm" / "1" / "model.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model.model_to_string())
    (out / "house_price_lightgbm" / "config.pbtxt").write_text(_fil_config(
        "house_price_lightgbm", "lightgbm", HOUSE_FEATURES, 1, [("is_classifier", "false")],
        "LightGBM regressor (scripts/make_example_models.py --fil): output__0 is the\n"
        "# price in thousands, as lightgbm.Booster.predict."))
    rmse = float(np.sqrt(np.mean((model.predict(x) - y) ** 2)))
    print(f"{path}: {path.stat().st_size} bytes, 60 trees, training RMSE {rmse:.1f}")


def write_examples(out):
    rng = np.random.default_rng(SEED)
    for name, (model, config) in [
        ("add_sub", add_sub()),
        ("mlp_classifier", mlp_classifier(rng)),
        ("string_int", string_int()),
        ("image_cnn", image_cnn(rng)),
    ]:
        _write_repo_model(out, name, model, config)
        size = (out / name / "1" / "model.onnx").stat().st_size
        print(f"{out / name}: model.onnx {size} bytes" + ("" if config else " (no config.pbtxt)"))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, help="repository to write the examples into")
    parser.add_argument("--all-types", type=pathlib.Path, metavar="OUTDIR",
                        help="write OUTDIR/identity_all_types/1/model.onnx (no config) instead")
    parser.add_argument("--testdata", type=pathlib.Path, metavar="OUTDIR",
                        help="write the unit tests' extra models into OUTDIR instead")
    parser.add_argument("--offset", nargs=4, metavar=("DIR", "NAME", "VERSION", "K"),
                        help="write one offset model (y = x + K) as DIR/NAME/VERSION")
    parser.add_argument("--many", nargs=2, metavar=("DIR", "COUNT"),
                        help="write COUNT distinct offset models DIR/m0000...")
    parser.add_argument("--sklearn", type=pathlib.Path, metavar="DIR",
                        help="write DIR/sklearn_iris/1/model.joblib (scikit-learn, joblib)")
    parser.add_argument("--torch", action="store_true",
                        help="write the TorchScript example image_cnn_torch (into --out or examples/models)")
    parser.add_argument("--fil", action="store_true",
                        help="write the tree-model examples credit_risk_xgboost and "
                             "house_price_lightgbm (into --out or examples/models)")
    parser.add_argument("--width", type=int, default=4, help="offset models' tensor width")
    parser.add_argument("--mlp", nargs=4, metavar=("DIR", "NAME", "HIDDEN", "EXTRA_LAYERS"),
                        help="write a wider/deeper mlp_classifier as DIR/NAME (same inputs and outputs)")
    args = parser.parse_args(argv)

    if args.sklearn:
        write_sklearn_iris(args.sklearn)
        return 0
    if args.torch:
        write_image_cnn_torch(args.out or REPO_ROOT / "examples" / "models")
        return 0
    if args.fil:
        write_fil_examples(args.out or REPO_ROOT / "examples" / "models")
        return 0
    if args.mlp:
        out, name, hidden, extra = args.mlp
        model, config = mlp_classifier(np.random.default_rng(SEED), int(hidden), int(extra), name)
        _write_repo_model(pathlib.Path(out), name, model, config)
        return 0
    if args.offset:
        out, name, version, k = args.offset
        write_offset(pathlib.Path(out), name, int(version), float(k), args.width)
        return 0
    if args.many:
        out, count = pathlib.Path(args.many[0]), int(args.many[1])
        for i in range(count):
            write_offset(out, f"m{i:04d}", 1, float(i), args.width)
        print(f"{out}: {count} offset models of width {args.width}")
        return 0

    if args.all_types:
        _write_repo_model(args.all_types, "identity_all_types", identity_all_types())
        print(f"{args.all_types / 'identity_all_types'}: written")
        return 0
    if args.testdata:
        for name, model in [
            ("identity_all_types.onnx", identity_all_types()),
            ("unsupported_type.onnx", unsupported_type()),
            ("fixed_batch.onnx", fixed_batch()),
            ("misdeclared_output.onnx", misdeclared_output()),
        ]:
            _save(model, args.testdata / name)
            print(f"{args.testdata / name}: {(args.testdata / name).stat().st_size} bytes")
        return 0
    write_examples(args.out or REPO_ROOT / "examples" / "models")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
