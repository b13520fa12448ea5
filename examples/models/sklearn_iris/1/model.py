"""A scikit-learn Pipeline served as Triton users serve one: loaded with joblib
in initialize, one predict_proba per request in execute."""
import os

import joblib
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], args["model_version"], "model.joblib")
        self.pipeline = joblib.load(path)

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            probabilities = self.pipeline.predict_proba(x).astype(np.float32)
            labels = np.argmax(probabilities, axis=1).astype(np.int64).reshape(-1, 1)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("LABEL", labels),
                pb_utils.Tensor("PROBABILITIES", probabilities),
            ]))
        return responses
