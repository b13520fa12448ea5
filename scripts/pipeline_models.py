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


# ------------------------------------------------------------ sequences

def write_accumulate_onnx(path):
    """INPUT INT32 [-1,1], STATE_IN INT32 [-1,1] -> OUTPUT = STATE_OUT =
    2 * STATE_IN + INPUT: a sequence's answer is its inputs read as digits
    in base 2, so any misordering or lost state changes it."""
    b = "b"
    x = helper.make_tensor_value_info("INPUT", TensorProto.INT32, [b, 1])
    s = helper.make_tensor_value_info("STATE_IN", TensorProto.INT32, [b, 1])
    y = helper.make_tensor_value_info("OUTPUT", TensorProto.INT32, [b, 1])
    so = helper.make_tensor_value_info("STATE_OUT", TensorProto.INT32, [b, 1])
    two = numpy_helper.from_array(np.array([2], dtype=np.int32), "two")
    onnx_model(path, [helper.make_node("Mul", ["STATE_IN", "two"], ["doubled"]),
                      helper.make_node("Add", ["doubled", "INPUT"], ["OUTPUT"]),
                      helper.make_node("Identity", ["OUTPUT"], ["STATE_OUT"])],
               [x, s], [y, so], [two])


def write_accumulate(repo, name, strategy="oldest { max_candidate_sequences: 64 }",
                     instances=2, max_batch_size=8, idle_us=5_000_000, extra=""):
    """The accumulator as a sequence model with implicit state."""
    write_accumulate_onnx(repo / name / "1" / "model.onnx")
    (repo / name / "config.pbtxt").write_text(f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [{{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }}]
output [{{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }}]
sequence_batching {{
  max_sequence_idle_microseconds: {idle_us}
  {strategy}
  state [{{ input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ] }}]
}}
instance_group [{{ count: {instances} kind: KIND_CPU }}]
{extra}""")


def write_accumulate_plain(repo, name, instances=2, max_batch_size=8):
    """The same ONNX model without sequences: the client sends STATE_IN."""
    write_accumulate_onnx(repo / name / "1" / "model.onnx")
    (repo / name / "config.pbtxt").write_text(f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [
  {{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "STATE_IN" data_type: TYPE_INT32 dims: [ 1 ] }}
]
output [
  {{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ] }}
]
dynamic_batching {{ }}
instance_group [{{ count: {instances} kind: KIND_CPU }}]
""")


def write_controls(repo, name="controls"):
    """Returns its control inputs as outputs: OUT_START (int32 0/1), OUT_END
    (int32 5/7), OUT_READY (fp32 0/1), OUT_CORRID (uint64), and OUTPUT =
    INPUT."""
    b = "b"
    ins = [helper.make_tensor_value_info("INPUT", TensorProto.INT32, [b, 1]),
           helper.make_tensor_value_info("START", TensorProto.INT32, [b, 1]),
           helper.make_tensor_value_info("END", TensorProto.INT32, [b, 1]),
           helper.make_tensor_value_info("READY", TensorProto.FLOAT, [b, 1]),
           helper.make_tensor_value_info("CORRID", TensorProto.UINT64, [b, 1])]
    outs = [helper.make_tensor_value_info("OUTPUT", TensorProto.INT32, [b, 1]),
            helper.make_tensor_value_info("OUT_START", TensorProto.INT32, [b, 1]),
            helper.make_tensor_value_info("OUT_END", TensorProto.INT32, [b, 1]),
            helper.make_tensor_value_info("OUT_READY", TensorProto.FLOAT, [b, 1]),
            helper.make_tensor_value_info("OUT_CORRID", TensorProto.UINT64, [b, 1])]
    onnx_model(repo / name / "1" / "model.onnx",
               [helper.make_node("Identity", [i.name], [o.name]) for i, o in zip(ins, outs)],
               ins, outs)
    (repo / name / "config.pbtxt").write_text(f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 4
input [{{ name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] }}]
output [
  {{ name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "OUT_START" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "OUT_END" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "OUT_READY" data_type: TYPE_FP32 dims: [ 1 ] }},
  {{ name: "OUT_CORRID" data_type: TYPE_UINT64 dims: [ 1 ] }}
]
sequence_batching {{
  direct {{ }}
  control_input [
    {{ name: "START" control [{{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }}] }},
    {{ name: "END" control [{{ kind: CONTROL_SEQUENCE_END int32_false_true: [ 5, 7 ] }}] }},
    {{ name: "READY" control [{{ kind: CONTROL_SEQUENCE_READY fp32_false_true: [ 0, 1 ] }}] }},
    {{ name: "CORRID" control [{{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 }}] }}
  ]
}}
""")


def accumulated(values):
    """What the accumulator answers after each of `values`."""
    out, state = [], 0
    for v in values:
        state = 2 * state + v
        out.append(state)
    return out
