"""Token streaming, as Triton users write decoupled Python models.

Each request's TEXT is split on whitespace; every token goes back in its own
response (TOKEN, and INDEX: its position), sent as soon as it is "generated",
then the response sender is closed with an empty final response. execute
returns None: in decoupled mode the response senders answer.
"""
import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(config):
            raise pb_utils.TritonModelException(
                "token_stream needs model_transaction_policy { decoupled: true }")
        self.token_dtype = pb_utils.triton_string_to_numpy(
            pb_utils.get_output_config_by_name(config, "TOKEN")["data_type"])

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            text = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            prompt = text.reshape(-1)[0]
            if isinstance(prompt, bytes):
                prompt = prompt.decode("utf-8")
            for index, token in enumerate(str(prompt).split()):
                sender.send(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("TOKEN", np.array([token.encode("utf-8")],
                                                      dtype=self.token_dtype)),
                    pb_utils.Tensor("INDEX", np.array([index], dtype=np.int32)),
                ]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def finalize(self):
        pass
