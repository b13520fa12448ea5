"""A hostile model in a worker process writes to its call socket (protocol
v4: where a worker speaks first) what the protocol does not allow: a frame
that is no frame, a frame of a type only the server sends, a BLS call with a
tensor whose bytes contradict its shape. Each time the server cuts the worker
off (it is killed, naming the broken protocol, and restarts); a model in
another worker keeps serving throughout, and the hostile model serves again
once its worker is back.
"""
import textwrap

import numpy as np
import pytest
import tritonclient.http as httpclient

from conftest import Server, wait_for_log

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
"""

# IN 0: answers IN. IN 1, 2, 3: first writes a hostile frame to the call
# socket (found among its descriptors: the socket that is not descriptor 3,
# the control socket).
HOSTILE = """
import os
import struct

import numpy as np
import triton_python_backend_utils as pb_utils

MAGIC, VERSION = 0x4B574D4D, 4


def call_socket():
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue
        if int(name) != 3 and target.startswith("socket:"):
            return int(name)
    raise RuntimeError("no call socket")


def frame(kind, payload, call_id=1):
    return struct.pack("<IHHII", MAGIC, VERSION, kind, len(payload), call_id) + payload


def s(text):
    return struct.pack("<I", len(text)) + text


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            mode = int(pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()[0])
            if mode == 1:
                os.write(call_socket(), b"\\0" * 16)  # no magic: not a frame
            elif mode == 2:
                os.write(call_socket(), frame(100, b""))  # a Reply: the server's to send
            elif mode == 3:
                # A BLS Infer whose FP32 input of shape [4] carries 3 bytes
                # (after 1 byte of padding: they start 8-byte aligned, at 56).
                tensor = s(b"X") + struct.pack("<IIqQ", 11, 1, 4, 3) + b"\\0" + b"abc"
                payload = (s(b"callee") + s(b"") + s(b"") + struct.pack("<I", 0) +
                           struct.pack("<I", 1) + tensor + struct.pack("<I", 0))
                os.write(call_socket(), frame(21, payload))
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUT", np.array([mode], dtype=np.int32))]))
        return responses
"""

PLAIN = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]) for r in requests]
"""


def write(repo, name, source):
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text(textwrap.dedent(source).lstrip())
    (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name))


def infer(client, model, value):
    t = httpclient.InferInput("IN", [1], "INT32")
    t.set_data_from_numpy(np.array([value], dtype=np.int32))
    return client.infer(model, [t])


@pytest.mark.parametrize("mode,why", [
    (1, "magic 0x00000000"),
    (2, "a Reply frame on the call socket, which a worker does not send"),
    (3, "worker message Infer: input 0 'X'"),
])
def test_a_worker_that_breaks_its_call_protocol_is_cut_off_alone(tmp_path, mode, why):
    write(tmp_path, "hostile", HOSTILE)
    write(tmp_path, "plain", PLAIN)
    s = Server([tmp_path], "--worker-restart-backoff-ms", "10").start()
    try:
        client = httpclient.InferenceServerClient(s.url)
        assert infer(client, "hostile", 0).as_numpy("OUT")[0] == 0
        try:
            infer(client, "hostile", mode)  # answered, or lost with its worker
        except Exception:  # noqa: BLE001
            pass
        wait_for_log(s, "model 'hostile' version 1: worker killed: broken protocol on its "
                        "call channel")
        assert why in s.text(), s.text()[-3000:]
        assert infer(client, "plain", 7).as_numpy("OUT")[0] == 7
        wait_for_log(s, "model 'hostile' version 1: worker 0 restarted")
        assert infer(client, "hostile", 0).as_numpy("OUT")[0] == 0
        client.close()
    finally:
        assert s.stop() == 0, s.text()[-3000:]
