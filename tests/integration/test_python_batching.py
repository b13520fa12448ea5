"""A Python model with dynamic batching: every request gets its own answer
whatever the batch, and (Triton's behaviour) `execute` receives the queued
requests as a list."""
import threading

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import Server
from python_models import write_model

# Answers each request with its input plus 100, and how many requests the
# execute call that served it received.
COUNTING_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            count = np.full((x.shape[0], 1), len(requests), dtype=np.int32)
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUT", x + 100),
                pb_utils.Tensor("REQUESTS", count),
            ]))
        return responses
"""

# The batcher waits (up to 5 s) for 4 requests: the 4 sent together form one batch.
COUNTING_CONFIG = """
name: "counting"
backend: "python"
max_batch_size: 8
dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 5000000 }
input [{ name: "IN" data_type: TYPE_FP32 dims: [ 2 ] }]
output [
  { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] },
  { name: "REQUESTS" data_type: TYPE_INT32 dims: [ 1 ] }
]
"""


def four_at_once(tmp_path):
    """Sends four requests together; {i: (OUT, REQUESTS)}."""
    write_model(tmp_path, "counting", COUNTING_MODEL, COUNTING_CONFIG)
    s = Server([tmp_path]).start()
    try:
        results = {}

        def send(i):
            client = httpclient.InferenceServerClient(s.url)
            inp = httpclient.InferInput("IN", [1, 2], "FP32")
            inp.set_data_from_numpy(np.array([[i, -i]], dtype=np.float32))
            r = client.infer("counting", [inp])
            results[i] = (r.as_numpy("OUT"), r.as_numpy("REQUESTS"))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_batched_requests_each_get_their_answer(tmp_path):
    results = four_at_once(tmp_path)
    assert sorted(results) == [0, 1, 2, 3]
    for i, (out, _) in results.items():
        np.testing.assert_array_equal(out, [[i + 100, -i + 100]])


def test_execute_receives_the_batch_as_a_list_of_requests(tmp_path):
    results = four_at_once(tmp_path)
    assert [int(req[0][0]) for _, (_, req) in sorted(results.items())] == [4, 4, 4, 4], results


# In one batch of four, request 2 gets a TritonError and request 3 an output
# contradicting the config; each request's id reaches the model.
MIXED_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            count = np.full((x.shape[0], 1), len(requests), dtype=np.int32)
            i = int(x[0, 0])
            assert request.request_id() == "r%d" % i, request.request_id()
            if i == 2:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    "request two is refused", pb_utils.TritonError.INVALID_ARG)))
            elif i == 3:
                responses.append(pb_utils.InferenceResponse([
                    pb_utils.Tensor("OUT", x.astype(np.float64)),
                    pb_utils.Tensor("REQUESTS", count),
                ]))
            else:
                responses.append(pb_utils.InferenceResponse([
                    pb_utils.Tensor("OUT", x + 100),
                    pb_utils.Tensor("REQUESTS", count),
                ]))
        return responses
"""


def test_each_request_of_a_list_fails_or_succeeds_on_its_own(tmp_path):
    write_model(tmp_path, "counting", MIXED_MODEL, COUNTING_CONFIG)
    s = Server([tmp_path]).start()
    try:
        results = {}

        def send(i):
            client = httpclient.InferenceServerClient(s.url)
            inp = httpclient.InferInput("IN", [1, 2], "FP32")
            inp.set_data_from_numpy(np.array([[i, -i]], dtype=np.float32))
            try:
                r = client.infer("counting", [inp], request_id="r%d" % i)
                results[i] = (r.as_numpy("OUT"), r.as_numpy("REQUESTS"))
            except InferenceServerException as e:
                results[i] = e

        threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in (0, 1):
            out, requests = results[i]
            np.testing.assert_array_equal(out, [[i + 100, -i + 100]])
            assert int(requests[0][0]) == 4, results
        assert isinstance(results[2], InferenceServerException), results
        assert "request two is refused" in results[2].message()
        assert results[2].status() == "400", results[2].status()
        assert isinstance(results[3], InferenceServerException), results
        assert "output 'OUT' has data type TYPE_FP64" in results[3].message(), results[3].message()
        # The model keeps serving after a batch with failures.
        client = httpclient.InferenceServerClient(s.url)
        inp = httpclient.InferInput("IN", [1, 2], "FP32")
        inp.set_data_from_numpy(np.array([[0, 0]], dtype=np.float32))
        r = client.infer("counting", [inp], request_id="r0")
        np.testing.assert_array_equal(r.as_numpy("OUT"), [[100, 100]])
    finally:
        assert s.stop() == 0, s.text()[-3000:]
