"""mlp_classifier's model.onnx under onnxruntime's Python API (Triton stand-in;
see config.pbtxt). A batch of requests is run request by request."""
import os

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "input").as_numpy()
            (probabilities,) = self.session.run(["probabilities"], {"input": x})
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("probabilities", probabilities)]))
        return responses
