"""Python models for the Python backend's integration tests, written as Triton's
documentation of its Python backend writes them (model.py + config.pbtxt), and
a helper that lays them out in a temporary model repository."""
import textwrap
from pathlib import Path

ADD_SUB_CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: {max_batch_size}
input [
  {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }},
  {{ name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }}
]
output [
  {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }},
  {{ name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 4 ] }}
]
instance_group [{{ count: {count} kind: KIND_CPU }}]
{extra}
"""

# Triton's python_backend examples/add_sub/model.py, as users copy it.
ADD_SUB = """
import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.model_config = model_config = json.loads(args["model_config"])
        output0_config = pb_utils.get_output_config_by_name(model_config, "OUTPUT0")
        output1_config = pb_utils.get_output_config_by_name(model_config, "OUTPUT1")
        self.output0_dtype = pb_utils.triton_string_to_numpy(output0_config["data_type"])
        self.output1_dtype = pb_utils.triton_string_to_numpy(output1_config["data_type"])

    def execute(self, requests):
        output0_dtype = self.output0_dtype
        output1_dtype = self.output1_dtype
        responses = []
        for request in requests:
            in_0 = pb_utils.get_input_tensor_by_name(request, "INPUT0")
            in_1 = pb_utils.get_input_tensor_by_name(request, "INPUT1")
            out_0, out_1 = (
                in_0.as_numpy() + in_1.as_numpy(),
                in_0.as_numpy() - in_1.as_numpy(),
            )
            out_tensor_0 = pb_utils.Tensor("OUTPUT0", out_0.astype(output0_dtype))
            out_tensor_1 = pb_utils.Tensor("OUTPUT1", out_1.astype(output1_dtype))
            inference_response = pb_utils.InferenceResponse(
                output_tensors=[out_tensor_0, out_tensor_1]
            )
            responses.append(inference_response)
        return responses

    def finalize(self):
        print("Cleaning up...")
"""


def add_sub_config(name, count=1, max_batch_size=0, extra=""):
    return ADD_SUB_CONFIG.format(name=name, count=count, max_batch_size=max_batch_size,
                                 extra=extra)


def write_model(repo: Path, name: str, model_py: str, config: str = None, version: int = 1,
                filename: str = "model.py"):
    """Writes <repo>/<name>/config.pbtxt (when given) and <version>/<filename>."""
    folder = repo / name / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_text(textwrap.dedent(model_py).lstrip())
    if config is not None:
        (repo / name / "config.pbtxt").write_text(textwrap.dedent(config).lstrip())
    return repo / name
