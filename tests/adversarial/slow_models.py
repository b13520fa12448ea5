"""ONNX models whose run time a request's values decide, for the hostile suite."""
import onnx
from onnx import TensorProto, helper

IR_VERSION = 9
OPSET = 17


def loop_model():
    """spin(N: INT64 [1], X: FP32 [4]) -> Y: FP32 [4]: adds 1 to X, N times.
    A tiny request (40 bytes) whose run time is whatever N says."""
    n = helper.make_tensor_value_info("N", TensorProto.INT64, [1])
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])
    body = helper.make_graph(
        [helper.make_node("Add", ["x_in", "one"], ["x_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [4])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    graph = helper.make_graph(
        [helper.make_node("Squeeze", ["N"], ["trips"]),
         helper.make_node("Loop", ["trips", "cond", "X"], ["Y"], body=body)],
        "spin", [n, x], [y],
        [helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def write_loop_model(repo, name="spin"):
    (repo / name / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(loop_model(), str(repo / name / "1" / "model.onnx"))
    return repo / name
