"""The saturation metrics the alert rules need (deploy/prometheus,
docs/operations.md): each model's queue capacity
(mmserve_inference_queue_capacity: its priority levels' max_queue_size
summed, absent when unbounded) and the execution slots
(mmserve_execution_slots, _busy, _waiting), read at the scrape."""
import os
import shutil
import sys
import threading
import time

import requests

from conftest import EXAMPLES, Server
from python_models import add_sub_config, write_model
from test_observability import samples, scrape, value

# Waits until the file its GATE parameter names exists, then answers: a slot
# stays busy for as long as the test wants, without a sleep to tune.
GATED = """
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        gate = os.environ.get("MMSERVE_TEST_GATE", "")
        while gate and not os.path.exists(gate):
            time.sleep(0.01)
        out = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            out.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", a + b), pb_utils.Tensor("OUTPUT1", a - b)]))
        return out
"""

BODY = {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                   {"name": "INPUT1", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}


def test_queue_capacity_and_execution_slots(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "add_sub", repo / "add_sub")  # no dynamic batching: unbounded
    # Two priority levels: level 1 holds 3, level 2 the default policy's 5.
    write_model(repo, "gated", GATED, add_sub_config("gated", max_batch_size=4, extra="""
        dynamic_batching {
          priority_levels: 2
          default_priority_level: 2
          default_queue_policy { max_queue_size: 5 }
          priority_queue_policy { key: 1 value: { max_queue_size: 3 } }
        }"""))
    gate = tmp_path / "gate"
    s = Server([repo], "--execution-slots", "3", "--python-env", sys.prefix,
               env={"MMSERVE_TEST_GATE": str(gate)})
    s.start()
    try:
        idle = samples(scrape(s))
        assert value(idle, "mmserve_inference_queue_capacity", model="gated", version="1",
                     tenant="shared") == 8
        assert not [n for n, ls in idle if n == "mmserve_inference_queue_capacity"
                    and dict(ls).get("model") == "add_sub"]
        assert value(idle, "mmserve_execution_slots") == 3
        assert value(idle, "mmserve_execution_slots_busy") == 0
        assert value(idle, "mmserve_execution_slots_waiting") == 0

        # One request holds a slot until the gate opens.
        answer = {}
        t = threading.Thread(target=lambda: answer.update(r=requests.post(
            s.base + "/v2/models/gated/infer", json=BODY, timeout=120)))
        t.start()
        deadline = time.monotonic() + 60
        while value(samples(scrape(s)), "mmserve_execution_slots_busy") != 1:
            assert time.monotonic() < deadline, "the gated request never took a slot"
            time.sleep(0.05)
        gate.touch()
        t.join(120)
        assert answer["r"].status_code == 200, answer["r"].text
        deadline = time.monotonic() + 60
        while value(samples(scrape(s)), "mmserve_execution_slots_busy") != 0:
            assert time.monotonic() < deadline, "the slot was never given back"
            time.sleep(0.05)
    finally:
        gate.touch()
        assert s.stop() == 0, s.text()[-3000:]
