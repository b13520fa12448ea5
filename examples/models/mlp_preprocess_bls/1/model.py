"""BLS pre-processing, as Triton users write it: RAW features are
standardized ((x - MEAN) / SCALE, fixed statistics) and sent to the ONNX model
mlp_classifier with pb_utils.InferenceRequest(...).exec(); its error, if any,
becomes this request's error.
"""
import numpy as np
import triton_python_backend_utils as pb_utils

# The statistics a training pipeline would have produced, fixed here.
MEAN = np.linspace(-1.0, 1.0, 16, dtype=np.float32)
SCALE = np.linspace(0.5, 2.0, 16, dtype=np.float32)


def preprocess(raw):
    return ((raw - MEAN) / SCALE).astype(np.float32)


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "RAW").as_numpy()
            inner = pb_utils.InferenceRequest(
                model_name="mlp_classifier",
                requested_output_names=["probabilities"],
                inputs=[pb_utils.Tensor("input", preprocess(raw))])
            inner_response = inner.exec()
            if inner_response.has_error():
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(
                        "mlp_classifier failed: " + inner_response.error().message())))
                continue
            probabilities = pb_utils.get_output_tensor_by_name(
                inner_response, "probabilities").as_numpy()
            label = np.argmax(probabilities, axis=-1).astype(np.int64).reshape(-1, 1)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("PROBABILITIES", probabilities),
                pb_utils.Tensor("LABEL", label),
            ]))
        return responses
