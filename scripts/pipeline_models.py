"""Models for pipelines (issue 23), shared by tests/integration/test_ensemble.py
and bench/pipelines.py: an ONNX pre-processing step (standardizes 16 features
with fixed statistics, as examples/models/mlp_preprocess_bls does), the example
mlp_classifier, an ONNX post-processing step (the arg-max), and the ensemble
`pipeline` that chains them."""
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MEAN = np.linspace(-1.0, 1.0, 16, dtype=np.float32)
SCALE = np.linspace(0.5, 2.0, 16, dtype=np.float32)


def onnx_model(path, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, path.parent.parent.name, inputs, outputs,
                              initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def write_pre(repo):
    """RAW FP32 [-1,16] -> SCALED = (RAW - MEAN) / SCALE."""
    raw = helper.make_tensor_value_info("RAW", TensorProto.FLOAT, ["b", 16])
    scaled = helper.make_tensor_value_info("SCALED", TensorProto.FLOAT, ["b", 16])
    onnx_model(repo / "ens_pre" / "1" / "model.onnx",
               [helper.make_node("Sub", ["RAW", "mean"], ["centered"]),
                helper.make_node("Div", ["centered", "scale"], ["SCALED"])],
               [raw], [scaled],
               [numpy_helper.from_array(MEAN, "mean"), numpy_helper.from_array(SCALE, "scale")])
    (repo / "ens_pre" / "config.pbtxt").write_text("""name: "ens_pre"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [{ name: "RAW" data_type: TYPE_FP32 dims: [ 16 ] }]
output [{ name: "SCALED" data_type: TYPE_FP32 dims: [ 16 ] }]
""")


def write_post(repo):
    """PROBS FP32 [-1,10] -> LABEL INT64 [-1,1]: the arg-max."""
    probs = helper.make_tensor_value_info("PROBS", TensorProto.FLOAT, ["b", 10])
    label = helper.make_tensor_value_info("LABEL", TensorProto.INT64, ["b", 1])
    onnx_model(repo / "ens_post" / "1" / "model.onnx",
               [helper.make_node("ArgMax", ["PROBS"], ["LABEL"], axis=1, keepdims=1)],
               [probs], [label])
    (repo / "ens_post" / "config.pbtxt").write_text("""name: "ens_post"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [{ name: "PROBS" data_type: TYPE_FP32 dims: [ 10 ] }]
output [{ name: "LABEL" data_type: TYPE_INT64 dims: [ 1 ] }]
""")


def write_doubler(repo):
    """X FP32 [-1] -> Y = 2X (no batching)."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["n"])
    onnx_model(repo / "doubler" / "1" / "model.onnx",
               [helper.make_node("Add", ["X", "X"], ["Y"])], [x], [y])
    (repo / "doubler" / "config.pbtxt").write_text("""name: "doubler"
platform: "onnxruntime_onnx"
input [{ name: "X" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "Y" data_type: TYPE_FP32 dims: [ -1 ] }]
""")


def write_pipeline_steps(repo, examples):
    """ens_pre, mlp_classifier (copied from `examples`) and ens_post."""
    shutil.copytree(examples / "mlp_classifier", repo / "mlp_classifier")
    write_pre(repo)
    write_post(repo)


def write_ensemble(repo, name, body):
    (repo / name / "1").mkdir(parents=True, exist_ok=True)
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\nplatform: "ensemble"\n' + body)


PIPELINE = """max_batch_size: 64
input [{ name: "RAW" data_type: TYPE_FP32 dims: [ 16 ] }]
output [
  { name: "PROBABILITIES" data_type: TYPE_FP32 dims: [ 10 ] },
  { name: "LABEL" data_type: TYPE_INT64 dims: [ 1 ] }
]
ensemble_scheduling {
  step [
    { model_name: "ens_pre" model_version: -1
      input_map { key: "RAW" value: "RAW" } output_map { key: "SCALED" value: "scaled" } },
    { model_name: "mlp_classifier" model_version: -1
      input_map { key: "input" value: "scaled" }
      output_map { key: "probabilities" value: "PROBABILITIES" } },
    { model_name: "ens_post" model_version: -1
      input_map { key: "PROBS" value: "PROBABILITIES" } output_map { key: "LABEL" value: "LABEL" } }
  ]
}
"""
