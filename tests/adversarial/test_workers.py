"""Issue 17, worker processes: a hostile request or a hung worker must not
stall what it does not own, and a worker takes what the server's own process
takes (or the server refuses it, clearly, before the worker sees it).

- defect 12: a rank-17 request (valid in-process) made the worker exit; every
  such request answered 503 and the model restarted with backoff;
- defect 3 (workers): a SIGSTOPped worker without an execution timeout made
  health checks and other models' requests time out, over HTTP and gRPC;
- defect 5: a worker hung in its load handshake blocked every other model's
  restarts (one thread, no timeout);
- SIGTERM never completed while such a worker hung (no shutdown deadline).

Every wait polls for the state it needs, with a deadline that only bounds
failure; the "stays responsive" checks give each call 2 s where, before the
fix, it hung for as long as the worker was stopped.
"""
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, Server

CHAOS = """name: "{name}"
platform: "mmserve_chaos"
mmserve {{ isolation: PROCESS {extra} }}
{tail}
"""
OP_ECHO, OP_CRASH, OP_HANG = 0, 1, 3
PROMPT = 2.0  # seconds: a bound on an answer that must not wait for the stopped worker


def chaos_model(repo: Path, name, extra="", tail=""):
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(CHAOS.format(name=name, extra=extra, tail=tail))


def hang_while(path):
    return f'parameters {{ key: "load_hang_while_file" value {{ string_value: "{path}" }} }}'


def wait_for(predicate, what, deadline_s=60.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def command_body(op, arg=0):
    return {"inputs": [
        {"name": "COMMAND", "datatype": "INT64", "shape": [2], "data": [op, arg]},
        {"name": "INPUT", "datatype": "FP32", "shape": [3], "data": [1.0, 2.0, 3.0]}]}


def infer(server, model, op=OP_ECHO, arg=0, timeout=120):
    return requests.post(f"{server.base}/v2/models/{model}/infer", json=command_body(op, arg),
                         timeout=timeout)


def grpc_chaos_inputs(op=OP_ECHO):
    command = grpcclient.InferInput("COMMAND", [2], "INT64")
    command.set_data_from_numpy(np.array([op, 0], dtype=np.int64))
    data = grpcclient.InferInput("INPUT", [3], "FP32")
    data.set_data_from_numpy(np.array([1, 2, 3], dtype=np.float32))
    return [command, data]


def add_sub_body():
    return {"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": [0, 1, 2, 3]},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 1, 1, 1]}]}


def index_entry(server, model):
    for entry in requests.post(f"{server.base}/v2/repository/index", timeout=30).json():
        if entry["name"] == model:
            return entry
    return None


def ready(server, model):
    entry = index_entry(server, model)
    return entry is not None and entry["state"] == "READY"


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def workers_of(server, model):
    """Pids of the server's live worker processes serving `model`."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != server.proc.pid:
            continue
        if b"--worker" in argv and model.encode() in argv and alive(int(d.name)):
            out.append(int(d.name))
    return out


def executing(server, model):
    text = requests.get(server.metrics_url, timeout=10).text
    m = re.search(r'mmserve_inference_executing\{[^}]*model="' + model + r'"[^}]*\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def timed(call):
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


# ---------------------------------------------------------------- defect 12

def identity_model(path: Path, name, rank, tensor_name="x", process=True):
    """An ONNX Identity model whose input and output have `rank` dims."""
    import onnx
    from onnx import TensorProto, helper

    shape = [1] * (rank - 2) + [2, 3]
    graph = helper.make_graph(
        [helper.make_node("Identity", [tensor_name], ["y"])], name,
        [helper.make_tensor_value_info(tensor_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (path / name / "1").mkdir(parents=True)
    onnx.save(model, str(path / name / "1" / "model.onnx"))
    isolation = "mmserve { isolation: PROCESS }" if process else ""
    (path / name / "config.pbtxt").write_text(
        f'name: "{name}"\nplatform: "onnxruntime_onnx"\n{isolation}\n')
    return shape


@pytest.fixture(scope="module")
def deep_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("deep")
    shapes = {
        "deep17": identity_model(repo, "deep17", 17),
        "deep17_here": identity_model(repo, "deep17_here", 17, process=False),
        "named": identity_model(repo, "named", 3, tensor_name="n" * 300),
        "deep65": identity_model(repo, "deep65", 65),
        "deep65_here": identity_model(repo, "deep65_here", 65, process=False),
    }
    s = Server([repo], "--worker-restart-backoff-ms", "100").start()
    s.shapes = shapes
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def deep_request(shape, name="x"):
    data = np.arange(6, dtype=np.float32)
    if len(shape) <= 64:  # (numpy's limit)
        data = data.reshape(shape)
    return data, {"inputs": [{"name": name, "datatype": "FP32", "shape": list(shape),
                              "data": data.flatten().tolist()}]}


def raw_grpc_infer(server, model, shape, data):
    """A ModelInfer call built by hand (tritonclient's numpy caps rank at 64)."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "x", "FP32"
    tensor.shape.extend(shape)
    request.raw_input_contents.append(np.asarray(data, dtype=np.float32).tobytes())
    client = grpcclient.InferenceServerClient(server.grpc_url)
    return client._client_stub.ModelInfer(request, timeout=60)


def test_rank_17_is_served_by_a_worker_as_in_process(deep_server):
    """Defect 12: rank 17 made the worker exit (503, then restarts)."""
    s = deep_server
    pid = workers_of(s, "deep17")
    assert len(pid) == 1, pid
    data, body = deep_request(s.shapes["deep17"])
    for model in ("deep17", "deep17_here", "deep17"):
        r = requests.post(f"{s.base}/v2/models/{model}/infer", json=body, timeout=60)
        assert r.status_code == 200, (model, r.text)
        out = r.json()["outputs"][0]
        assert out["shape"] == list(data.shape) and out["data"] == data.flatten().tolist()
    grpc = grpcclient.InferenceServerClient(s.grpc_url)
    inp = grpcclient.InferInput("x", list(data.shape), "FP32")
    inp.set_data_from_numpy(data)
    result = grpc.infer("deep17", [inp], client_timeout=60)
    np.testing.assert_array_equal(result.as_numpy("y"), data)
    # The same worker answered everything: it never exited, nothing restarted.
    assert workers_of(s, "deep17") == pid
    entry = index_entry(s, "deep17")
    assert entry["state"] == "READY" and not entry.get("restarts"), entry


def test_long_tensor_names_reach_the_worker(deep_server):
    s = deep_server
    data, body = deep_request(s.shapes["named"], name="n" * 300)
    r = requests.post(f"{s.base}/v2/models/named/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == data.flatten().tolist()


def test_what_the_worker_protocol_cannot_carry_is_refused_before_the_worker(deep_server):
    """Rank 65 runs in-process; a worker cannot take it: a clear 400 (gRPC
    INVALID_ARGUMENT) every time, and the worker is untouched."""
    s = deep_server
    pid = workers_of(s, "deep65")
    assert len(pid) == 1, pid
    data, body = deep_request(s.shapes["deep65"])
    here = requests.post(f"{s.base}/v2/models/deep65_here/infer", json=body, timeout=60)
    assert here.status_code == 200, here.text
    for _ in range(3):
        r = requests.post(f"{s.base}/v2/models/deep65/infer", json=body, timeout=60)
        assert r.status_code == 400, r.text
        assert "input 'x' has 65 dims" in r.json()["error"], r.text
        assert "at most 64 dims" in r.json()["error"], r.text
    import grpc as grpc_module

    with pytest.raises(grpc_module.RpcError) as e:
        raw_grpc_infer(s, "deep65", s.shapes["deep65"], data)
    assert e.value.code() == grpc_module.StatusCode.INVALID_ARGUMENT, e.value
    assert "65 dims" in e.value.details()
    assert workers_of(s, "deep65") == pid
    entry = index_entry(s, "deep65")
    assert entry["state"] == "READY" and not entry.get("restarts"), entry
    assert "exited with status" not in s.text()


# ---------------------------------------------------------- defect 3 (workers)

def test_a_stopped_worker_stalls_nothing_it_does_not_own(tmp_path):
    """One execution slot, a model whose worker is SIGSTOPped mid-request, no
    execution timeout: health checks, the metrics, another in-process model
    and another worker model keep answering over HTTP and gRPC; requests to
    the stopped model wait; after SIGCONT everything completes."""
    chaos_model(tmp_path, "stuck")
    chaos_model(tmp_path, "other")
    s = Server([tmp_path, EXAMPLES], "--enable-test-backends", "--execution-slots", "1",
               "--model-control-mode", "explicit", "--load-model", "*").start()
    try:
        for _ in range(5):  # fast requests first: were it run inline, this is when
            assert infer(s, "stuck").status_code == 200
        [pid] = workers_of(s, "stuck")
        os.kill(pid, signal.SIGSTOP)
        results = {}

        def http_stuck():
            results["http"] = infer(s, "stuck", timeout=300)

        def grpc_stuck():
            client = grpcclient.InferenceServerClient(s.grpc_url)
            results["grpc"] = client.infer("stuck", grpc_chaos_inputs(), client_timeout=300)

        waiting = [threading.Thread(target=http_stuck), threading.Thread(target=grpc_stuck)]
        try:
            waiting[0].start()
            wait_for(lambda: executing(s, "stuck") >= 1, "the request in the stopped worker")
            waiting[1].start()
            grpc = grpcclient.InferenceServerClient(s.grpc_url)
            for _ in range(5):
                for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/add_sub/ready",
                             "/v2"):
                    r, took = timed(lambda: requests.get(s.base + path, timeout=30))
                    assert r.status_code == 200 and took < PROMPT, (path, took)
                r, took = timed(lambda: requests.post(f"{s.base}/v2/models/add_sub/infer",
                                                      json=add_sub_body(), timeout=30))
                assert r.status_code == 200 and took < PROMPT, (r.text, took)
                r, took = timed(lambda: infer(s, "other", timeout=30))
                assert r.status_code == 200 and took < PROMPT, (r.text, took)
                r, took = timed(lambda: requests.get(s.metrics_url, timeout=30))
                assert r.status_code == 200 and took < PROMPT, took
                r, took = timed(lambda: requests.post(f"{s.base}/v2/repository/index",
                                                      timeout=30))
                assert r.status_code == 200 and took < PROMPT, took
                ok, took = timed(lambda: grpc.is_server_ready(client_timeout=30))
                assert ok and took < PROMPT, took
                a = grpcclient.InferInput("INPUT0", [4], "FP32")
                a.set_data_from_numpy(np.arange(4, dtype=np.float32))
                b = grpcclient.InferInput("INPUT1", [4], "FP32")
                b.set_data_from_numpy(np.ones(4, dtype=np.float32))
                out, took = timed(lambda: grpc.infer("add_sub", [a, b], client_timeout=30))
                assert took < PROMPT and out.as_numpy("OUTPUT0").tolist() == [1, 2, 3, 4], took
                out, took = timed(lambda: grpc.infer("other", grpc_chaos_inputs(),
                                                     client_timeout=30))
                assert took < PROMPT and out.as_numpy("OUTPUT").tolist() == [1, 2, 3], took
            # The stopped model's requests still wait.
            assert "http" not in results and "grpc" not in results
            assert all(t.is_alive() for t in waiting)
        finally:
            os.kill(pid, signal.SIGCONT)
            for t in waiting:
                t.join(120)
        assert results["http"].status_code == 200, results["http"].text
        assert results["grpc"].as_numpy("OUTPUT").tolist() == [1, 2, 3]
        assert workers_of(s, "stuck") == [pid]  # the same worker, never restarted
        assert infer(s, "stuck").status_code == 200
    finally:
        assert s.stop() == 0, s.text()[-5000:]


# ---------------------------------------------------------------- defect 5

def test_a_worker_hung_in_its_restart_blocks_no_other_restart(tmp_path):
    """Defect 5: restarts ran one at a time on one thread; one that hung in
    its load handshake held up every other model's."""
    flag = tmp_path / "hang"
    repo = tmp_path / "repo"
    chaos_model(repo, "hangs", tail=hang_while(flag))
    chaos_model(repo, "crashy")
    s = Server([repo], "--enable-test-backends", "--worker-restart-backoff-ms", "50",
               "--worker-max-restart-backoff-ms", "200", "--worker-start-timeout-secs",
               "600").start()
    try:
        [hung_before] = workers_of(s, "hangs")
        flag.touch()
        assert infer(s, "hangs", OP_CRASH).status_code == 503
        # Its restart is under way and hangs in the load.
        wait_for(lambda: [p for p in workers_of(s, "hangs") if p != hung_before],
                 "the restarted worker of 'hangs'")
        [crashy_before] = workers_of(s, "crashy")
        assert infer(s, "crashy", OP_CRASH).status_code == 503
        wait_for(lambda: ready(s, "crashy") and infer(s, "crashy").status_code == 200,
                 "'crashy' back while 'hangs' is still hung in its restart")
        assert workers_of(s, "crashy") != [crashy_before]
        assert not ready(s, "hangs")
        flag.unlink()
        wait_for(lambda: ready(s, "hangs"), "'hangs' back once its load goes on")
        assert infer(s, "hangs").status_code == 200
    finally:
        if flag.exists():
            flag.unlink()
        assert s.stop() == 0, s.text()[-5000:]


def test_a_worker_start_has_a_timeout(tmp_path):
    """A load that hangs in the worker fails at --worker-start-timeout-secs,
    naming it, and leaves no worker behind; a restart that hangs is killed
    at the timeout and tried again."""
    flag = tmp_path / "hang"
    repo = tmp_path / "repo"
    chaos_model(repo, "hangs", tail=hang_while(flag))
    chaos_model(repo, "later", tail=hang_while(tmp_path / "later-hang"))
    s = Server([repo], "--enable-test-backends", "--model-control-mode", "explicit",
               "--load-model", "later", "--worker-restart-backoff-ms", "50",
               "--worker-max-restart-backoff-ms", "200", "--worker-start-timeout-secs",
               "3").start()  # (a normal start takes well under 1 s; 3 s spares a loaded machine)
    try:
        flag.touch()
        r, took = timed(lambda: requests.post(f"{s.base}/v2/repository/models/hangs/load",
                                              timeout=120))
        assert r.status_code != 200, r.text
        assert "did not finish starting" in r.text and "--worker-start-timeout-secs" in r.text
        assert took < 30, took
        wait_for(lambda: not workers_of(s, "hangs"), "the hung worker killed")
        flag.unlink()
        r = requests.post(f"{s.base}/v2/repository/models/hangs/load", timeout=120)
        assert r.status_code == 200, r.text
        assert infer(s, "hangs").status_code == 200

        # A restart that hangs: killed at the timeout, tried again, back when it can load.
        (tmp_path / "later-hang").touch()
        assert infer(s, "later", OP_CRASH).status_code == 503
        wait_for(lambda: re.search(r"model 'later' version 1 worker failed to restart: the "
                                   r"worker did not finish starting .* within the start timeout "
                                   r"of 3.0 s \(--worker-start-timeout-secs\)", s.text()),
                 "a restart timed out")
        (tmp_path / "later-hang").unlink()
        wait_for(lambda: ready(s, "later"), "'later' back")
        assert infer(s, "later").status_code == 200
    finally:
        for f in (flag, tmp_path / "later-hang"):
            if f.exists():
                f.unlink()
        assert s.stop() == 0, s.text()[-5000:]


# --------------------------------------------------------- shutdown deadline

def test_sigterm_with_a_stopped_worker_exits_at_the_exit_timeout(tmp_path):
    """SIGTERM never completed while a worker without an execution timeout
    hung. Now: at --exit-timeout-secs the workers are killed, the requests in
    them answered with an error, and the server exits (status 1: work was
    cancelled), leaving no worker behind."""
    chaos_model(tmp_path, "stuck")
    s = Server([tmp_path, EXAMPLES], "--enable-test-backends", "--exit-timeout-secs",
               "2").start()
    results = {}
    try:
        [pid] = workers_of(s, "stuck")
        os.kill(pid, signal.SIGSTOP)

        def http_stuck():
            try:
                results["http"] = infer(s, "stuck", timeout=120)
            except requests.RequestException as e:
                results["http"] = e

        def grpc_stuck():
            try:
                client = grpcclient.InferenceServerClient(s.grpc_url)
                results["grpc"] = client.infer("stuck", grpc_chaos_inputs(), client_timeout=120)
            except InferenceServerException as e:
                results["grpc"] = e

        waiting = [threading.Thread(target=http_stuck), threading.Thread(target=grpc_stuck)]
        for t in waiting:
            t.start()
        wait_for(lambda: executing(s, "stuck") >= 1, "the request in the stopped worker")
        time.sleep(0.2)  # (the gRPC call, queued behind it, need not have arrived: either way)
        start = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        try:
            code = s.proc.wait(60)
        except Exception:
            raise AssertionError("mmserve did not exit:\n" + s.text()[-5000:])
        took = time.monotonic() - start
        assert 1.5 < took < 10, took
        assert code == 1, s.text()[-3000:]
        assert "exit timeout of 2 s" in s.text()
        for t in waiting:
            t.join(60)
        http = results["http"]
        assert isinstance(http, requests.RequestException) or http.status_code == 503, http
        if not isinstance(http, requests.RequestException):
            assert "shutting down" in http.json()["error"], http.text
        assert isinstance(results["grpc"], InferenceServerException), results["grpc"]
        wait_for(lambda: not alive(pid), "the stopped worker gone", deadline_s=10)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except (OSError, UnboundLocalError):
            pass
        s.stop()
