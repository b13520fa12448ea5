"""mmserve's built-in model.py for MLflow pyfunc models (the python_function
flavor of the MLflow model format): loads the version folder with
mlflow.pyfunc.load_model and answers through the MLflow signature the server
derived the config from (repository/mlflow/mlmodel.h).

  - A column-based signature ("columns"): one input per column, shape [N];
    they become one pandas DataFrame. BYTES columns become str (UTF-8).
  - A tensor-based signature ("tensors"): named inputs become a dict of numpy
    arrays; one unnamed input ("input-0") is passed as the array itself.
  - The prediction (numpy array, pandas DataFrame or Series, list, dict)
    fills the outputs: a DataFrame's columns or a dict's keys by output name
    (in order when unnamed), anything else as the single output; each is cast
    to the output's data type.

Each request is answered on its own: one that fails gets its own error
naming the exception, the others of the batch are unaffected.
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

PARAMETER = "mmserve_mlflow_pyfunc"


class TritonPythonModel:
    def initialize(self, args):
        import mlflow.pyfunc

        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"])
        self.model = mlflow.pyfunc.load_model(path)
        kind = config.get("parameters", {}).get(PARAMETER, {}).get("string_value", "tensors")
        self.columns = kind == "columns"
        self.inputs = [(i["name"], i.get("data_type", "")) for i in config.get("input", [])]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"]))
                        for o in config.get("output", [])]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._run(request)))
            except Exception as e:  # noqa: BLE001 - the request's own error
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"MLflow model: {type(e).__name__}: {e}")))
        return responses

    def _inputs(self, request):
        data = {}
        for name, data_type in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                continue
            array = tensor.as_numpy()
            if data_type == "TYPE_STRING":
                array = np.array([x.decode("utf-8") if isinstance(x, bytes) else x
                                  for x in array.reshape(-1)], dtype=object).reshape(array.shape)
            data[name] = array
        return data

    def _run(self, request):
        data = self._inputs(request)
        if self.columns:
            import pandas as pd

            result = self.model.predict(pd.DataFrame({k: v.reshape(-1) for k, v in data.items()}))
        elif len(data) == 1 and next(iter(data)) == "input-0":
            result = self.model.predict(next(iter(data.values())))
        else:
            result = self.model.predict(data)
        return self._outputs(result)

    def _outputs(self, result):
        by_name = None
        if isinstance(result, dict):
            by_name = result
        elif hasattr(result, "columns") and len(self.outputs) > 1:  # a DataFrame
            by_name = {str(c): result[c] for c in result.columns}
        tensors = []
        for i, (name, dtype) in enumerate(self.outputs):
            if by_name is None:
                value = result
            elif name in by_name:
                value = by_name[name]
            else:
                value = list(by_name.values())[i]
            array = np.asarray(value)
            if dtype == np.object_:
                array = np.array([x if isinstance(x, bytes) else str(x).encode("utf-8")
                                  for x in array.reshape(-1)], dtype=object).reshape(array.shape)
            else:
                array = array.astype(dtype, copy=False)
            tensors.append(pb_utils.Tensor(name, array))
        return tensors
