"""Python models and the isolation room: a model that calls os._exit or
segfaults (through ctypes) takes down only its own worker process (its request
fails UNAVAILABLE, the worker restarts), and another Python model under load
never notices; instance_group count N gives N worker processes."""
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import Server, binary
from python_models import ADD_SUB, add_sub_config, write_model

# Dies on request: os._exit(3) for a first value of 1, a segfault for 2.
CRASHER = """
import ctypes
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        x = pb_utils.get_input_tensor_by_name(requests[0], "IN").as_numpy()
        if x[0] == 1:
            os._exit(3)
        if x[0] == 2:
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x)])]
"""

CRASHER_CONFIG = """
name: "crasher"
backend: "python"
input [{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }]
"""


def children(pid):
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append((int(d.name), cmd))
    return out


def workers_of(server, model):
    return sorted(pid for pid, cmd in children(server.proc.pid)
                  if b"--worker" in cmd and len(cmd) > 2 and cmd[2] == model.encode())


def wait_for(predicate, what, deadline_s=60.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def crash_body(value):
    return {"inputs": [{"name": "IN", "datatype": "FP32", "shape": [2], "data": [value, 7]}]}


def add_sub_ok(server, session, model="add_sub"):
    a = np.arange(4, dtype=np.float32)
    r = session.post(f"{server.base}/v2/models/{model}/infer", json={"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": a.tolist()},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 1, 1, 1]}]}, timeout=60)
    return r.status_code == 200 and r.json()["outputs"][0]["data"] == [1, 2, 3, 4], r.text


def ready(server, model):
    return requests.get(f"{server.base}/v2/models/{model}/ready", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("python_isolation")
    write_model(repo, "crasher", CRASHER, CRASHER_CONFIG)
    write_model(repo, "add_sub", ADD_SUB, add_sub_config("add_sub"))
    write_model(repo, "add_sub_two", ADD_SUB, add_sub_config("add_sub_two", count=2))
    s = Server([repo], "--worker-restart-backoff-ms", "50",
               "--worker-max-restart-backoff-ms", "200").start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def test_instance_group_count_two_is_two_worker_processes(server):
    assert len(workers_of(server, "add_sub_two")) == 2
    assert len(workers_of(server, "add_sub")) == 1
    session = requests.Session()
    for _ in range(8):
        ok, text = add_sub_ok(server, session, "add_sub_two")
        assert ok, text


SEGV = "killed by signal 11 (Segmentation fault)"


def check_cause(server, message, cause):
    """The ASan build's worker reports a segfault itself and exits 1."""
    if cause == SEGV and "exited with status 1" in message:
        assert "AddressSanitizer: SEGV" in server.text(), message
    else:
        assert cause in message, message


@pytest.mark.parametrize("value,cause", [(1, "exited with status 3"), (2, SEGV)])
def test_a_dying_model_fails_its_request_unavailable_and_restarts(server, value, cause):
    wait_for(lambda: ready(server, "crasher"), "crasher ready")
    before = workers_of(server, "crasher")
    assert len(before) == 1
    r = requests.post(f"{server.base}/v2/models/crasher/infer", json=crash_body(value), timeout=60)
    assert r.status_code == 503, r.text
    assert "model 'crasher' version 1 worker" in r.json()["error"], r.text
    check_cause(server, r.json()["error"], cause)
    # Back, in a new worker process, answering again. The new worker first:
    # the model leaves READY before its restart is spawned, so a READY seen
    # after that is the new worker's (READY read first could be the old one's).
    wait_for(lambda: workers_of(server, "crasher") and workers_of(server, "crasher") != before,
             "a new crasher worker")
    wait_for(lambda: ready(server, "crasher"), "crasher back")
    r = requests.post(f"{server.base}/v2/models/crasher/infer", json=crash_body(5), timeout=60)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [5, 7], r.text


def test_grpc_sees_unavailable(server):
    wait_for(lambda: ready(server, "crasher"), "crasher ready")
    client = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("IN", [2], "FP32")
    inp.set_data_from_numpy(np.array([2, 7], dtype=np.float32))
    with pytest.raises(InferenceServerException) as e:
        client.infer("crasher", [inp])
    assert e.value.status() == "StatusCode.UNAVAILABLE", e.value
    check_cause(server, str(e.value), SEGV)


def test_other_models_under_load_never_notice(server):
    """While crasher dies again and again (os._exit and segfaults in turn),
    add_sub answers every one of its requests, from four client threads."""
    wait_for(lambda: ready(server, "crasher"), "crasher ready")
    stop = threading.Event()
    failures = []
    answered = []

    def load():
        session = requests.Session()
        while not stop.is_set():
            ok, text = add_sub_ok(server, session)
            (answered if ok else failures).append(text)

    crashes = []

    def crash_loop():
        value = 1
        while not stop.is_set():
            if ready(server, "crasher"):
                r = requests.post(f"{server.base}/v2/models/crasher/infer",
                                  json=crash_body(value), timeout=60)
                crashes.append(r.status_code)
                value = 3 - value
            time.sleep(0.01)

    threads = [threading.Thread(target=load) for _ in range(4)]
    threads.append(threading.Thread(target=crash_loop))
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(crashes) >= 6, "six crashes", deadline_s=120)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [], failures[:3]
    assert len(answered) > 0
    assert set(crashes) == {503}, crashes


def test_a_restarted_python_worker_runs_the_program_the_server_started_with(tmp_path):
    # An upgrade in place replaces the files under a running server: a Python
    # worker that restarts later still runs the mmserve-python-worker the
    # server opened as it started (a newer one would speak another protocol).
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("mmserve", "mmserve-python-worker"):
        shutil.copy(binary().parent / name, bindir / name)
    repo = tmp_path / "repo"
    write_model(repo, "crasher", CRASHER, CRASHER_CONFIG)
    s = Server([repo], "--worker-restart-backoff-ms", "50", "--worker-max-restart-backoff-ms",
               "200", binary_path=bindir / "mmserve").start()
    try:
        program = bindir / "mmserve-python-worker"
        program.unlink()
        program.write_text("#!/bin/sh\nexit 42\n")  # the "new version" on disk
        program.chmod(0o755)
        session = requests.Session()
        first = wait_for(lambda: workers_of(s, "crasher"), "the crasher's worker")
        r = session.post(f"{s.base}/v2/models/crasher/infer", json=crash_body(1), timeout=60)
        assert r.status_code == 503, r.text
        # Restarted: a new worker process (spawned only once the server saw the
        # first one exit and marked the model down), and ready again. (Ready
        # alone can still be the moment before the server saw the exit.)
        wait_for(lambda: (w := workers_of(s, "crasher")) and w != first and ready(s, "crasher"),
                 "the crasher's worker restarted")
        r = session.post(f"{s.base}/v2/models/crasher/infer", json=crash_body(5), timeout=60)
        assert r.status_code == 200, r.text
        pid = wait_for(lambda: workers_of(s, "crasher"), "the crasher's worker")[0]
        assert os.readlink(f"/proc/{pid}/exe").endswith("mmserve-python-worker (deleted)")
    finally:
        assert s.stop() == 0, s.text()[-5000:]
