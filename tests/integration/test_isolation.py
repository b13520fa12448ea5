"""Process isolation through the real interfaces: models in worker processes
that crash, leak and hang on command (the test-only "mmserve_chaos" platform,
offered with --enable-test-backends), and the example models run in workers
giving the same answers as in the server process.

Nothing here waits for a fixed time to pass: every wait polls for the state
it needs (wait_for), with a deadline far above what the step takes.
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
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from conftest import EXAMPLES, Server, binary, release_binary
from test_observability import samples, value

CHAOS = """name: "{name}"
platform: "mmserve_chaos"
mmserve {{ isolation: PROCESS {extra} }}
{tail}
"""

OP_ECHO, OP_CRASH, OP_LEAK, OP_HANG, OP_ABORT = 0, 1, 2, 3, 4


def chaos_repo(root: Path, models: dict) -> Path:
    """models: name -> (mmserve extras, config tail)."""
    for name, (extra, tail) in models.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(CHAOS.format(name=name, extra=extra, tail=tail))
    return root


def wait_for(predicate, what, deadline_s=60.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def command_body(op, arg=0, values=(1.0, 2.0, 3.0)):
    return {"inputs": [
        {"name": "COMMAND", "datatype": "INT64", "shape": [2], "data": [op, arg]},
        {"name": "INPUT", "datatype": "FP32", "shape": [len(values)], "data": list(values)}]}


def infer(server, model, op, arg=0, timeout=120):
    return requests.post(f"{server.base}/v2/models/{model}/infer", json=command_body(op, arg),
                         timeout=timeout)


def index_entry(server, model):
    for entry in requests.post(f"{server.base}/v2/repository/index", timeout=30).json():
        if entry["name"] == model:
            return entry
    return None


def ready(server, model):
    entry = index_entry(server, model)
    return entry is not None and entry["state"] == "READY"


def children(pid):
    """Pids of the processes whose parent is `pid`."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d.name))
    return out


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def add_sub_ok(server):
    a = np.arange(4, dtype=np.float32)
    r = requests.post(f"{server.base}/v2/models/add_sub/infer", json={"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4], "data": a.tolist()},
        {"name": "INPUT1", "datatype": "FP32", "shape": [4], "data": [1, 1, 1, 1]}]}, timeout=60)
    return r.status_code == 200 and r.json()["outputs"][0]["data"] == [1, 2, 3, 4]


@pytest.fixture(scope="module")
def chaos_server(tmp_path_factory):
    repo = chaos_repo(tmp_path_factory.mktemp("chaos"), {
        "chaos": ("execution_timeout_ms: 2000", ""),
        "crashy_load": ("", 'parameters { key: "crash_on_load" value { string_value: "1" } }'),
        "other": ("", ""),
    })
    s = Server([repo, EXAMPLES], "--enable-test-backends", "--model-control-mode", "explicit",
               "--load-model", "*", "--worker-restart-backoff-ms", "100",
               "--worker-max-restart-backoff-ms", "400").start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def test_worker_answers_like_a_model(chaos_server):
    r = infer(chaos_server, "chaos", OP_ECHO)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "OUTPUT" and out["data"] == [1, 2, 3] and out["shape"] == [3]
    # Its worker is a child process of the server running in worker mode.
    workers = [p for p in children(chaos_server.proc.pid)
               if b"--worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(workers) >= 2, workers  # chaos, other (crashy_load never loaded)
    # Loaded at the loaders' nice value (10), serving at the execution
    # threads' (5): the tests run as root, who may raise it back.
    for pid in workers:
        if os.geteuid() == 0:
            assert os.getpriority(os.PRIO_PROCESS, pid) == 5, pid


def test_concurrent_answers_keep_their_own_outputs(chaos_server):
    """Outputs are answered from the shared memory the worker wrote them to
    (binary outputs are written to the socket straight from it); the next
    batches must use other memory until each answer has gone out."""
    wait_for(lambda: ready(chaos_server, "chaos"), "chaos READY")
    errors = []

    def client(k):
        c = httpclient.InferenceServerClient(chaos_server.url)
        for i in range(12):
            values = np.full(1 << 18, k * 100 + i, dtype=np.float32)  # 1 MiB
            values[::1000] = -i
            inputs = [httpclient.InferInput("COMMAND", [2], "INT64"),
                      httpclient.InferInput("INPUT", [values.size], "FP32")]
            inputs[0].set_data_from_numpy(np.array([OP_ECHO, 0], dtype=np.int64))
            inputs[1].set_data_from_numpy(values, binary_data=True)
            out = [httpclient.InferRequestedOutput("OUTPUT", binary_data=True)]
            try:
                got = c.infer("chaos", inputs, outputs=out).as_numpy("OUTPUT")
                if not np.array_equal(got, values):
                    errors.append((k, i, "wrong values"))
            except InferenceServerException as e:
                errors.append((k, i, str(e)))
        c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_crash_during_load_is_reported_and_contained(chaos_server):
    entry = index_entry(chaos_server, "crashy_load")
    assert entry["state"] == "UNAVAILABLE"
    assert "signal 11" in entry["reason"] and "while loading" in entry["reason"], entry
    r = infer(chaos_server, "crashy_load", OP_ECHO)
    assert r.status_code == 503 and "signal 11" in r.json()["error"], r.text
    assert add_sub_ok(chaos_server)


def test_crash_during_inference_fails_only_that_request_and_restarts(chaos_server):
    before = index_entry(chaos_server, "chaos").get("restarts", 0)
    r = infer(chaos_server, "chaos", OP_CRASH)
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert "model 'chaos' version 1 worker killed by signal 11 (Segmentation fault)" in error, error
    # The other models never noticed.
    assert add_sub_ok(chaos_server)
    assert infer(chaos_server, "other", OP_ECHO).status_code == 200
    # The version comes back by itself, counted in the index with its cause.
    wait_for(lambda: ready(chaos_server, "chaos"), "chaos READY again")
    entry = index_entry(chaos_server, "chaos")
    assert entry["restarts"] == before + 1, entry
    assert "signal 11" in entry["last_failure"], entry
    assert infer(chaos_server, "chaos", OP_ECHO).status_code == 200
    # The metrics count the restart, and the failed request by its code.
    metrics = samples(requests.get(chaos_server.metrics_url, timeout=10).text)
    assert value(metrics, "mmserve_model_worker_restarts_total", model="chaos") == before + 1
    assert value(metrics, "mmserve_inference_requests_total", model="chaos",
                 code="UNAVAILABLE") >= 1


def test_abort_over_grpc_is_unavailable_naming_the_signal(chaos_server):
    wait_for(lambda: ready(chaos_server, "chaos"), "chaos READY")
    client = grpcclient.InferenceServerClient(chaos_server.grpc_url)
    inputs = [grpcclient.InferInput("COMMAND", [2], "INT64"),
              grpcclient.InferInput("INPUT", [2], "FP32")]
    inputs[0].set_data_from_numpy(np.array([OP_ABORT, 0], dtype=np.int64))
    inputs[1].set_data_from_numpy(np.array([1, 2], dtype=np.float32))
    with pytest.raises(InferenceServerException) as e:
        client.infer("chaos", inputs)
    assert e.value.status() == "StatusCode.UNAVAILABLE", e.value
    assert "signal 6 (Aborted)" in e.value.message(), e.value
    wait_for(lambda: ready(chaos_server, "chaos"), "chaos READY again")
    inputs[0].set_data_from_numpy(np.array([OP_ECHO, 0], dtype=np.int64))
    result = client.infer("chaos", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT"), [1, 2])
    client.close()


def test_hung_worker_is_killed_at_the_execution_timeout(chaos_server):
    wait_for(lambda: ready(chaos_server, "chaos"), "chaos READY")
    start = time.monotonic()
    r = infer(chaos_server, "chaos", OP_HANG, 0)  # for ever
    assert r.status_code == 503, r.text
    assert "killed: execution exceeded the timeout of 2000 ms" in r.json()["error"], r.text
    assert time.monotonic() - start >= 2.0  # never before the timeout
    wait_for(lambda: ready(chaos_server, "chaos"), "chaos READY again")
    assert "timeout" in index_entry(chaos_server, "chaos")["last_failure"]


def test_unload_ends_the_worker(chaos_server):
    before = set(children(chaos_server.proc.pid))
    r = requests.post(f"{chaos_server.base}/v2/repository/models/other/unload", timeout=60)
    assert r.status_code == 200, r.text
    gone = wait_for(lambda: before - set(children(chaos_server.proc.pid)), "a worker to end")
    assert len(gone) == 1
    r = requests.post(f"{chaos_server.base}/v2/repository/models/other/load", timeout=60)
    assert r.status_code == 200, r.text
    assert infer(chaos_server, "other", OP_ECHO).status_code == 200


def test_restarts_back_off_exponentially(tmp_path):
    repo = chaos_repo(tmp_path, {"chaos": ("", "")})
    s = Server([repo], "--enable-test-backends", "--worker-restart-backoff-ms", "200",
               "--worker-max-restart-backoff-ms", "800").start()
    try:
        delays = []
        for n in range(1, 5):
            wait_for(lambda: ready(s, "chaos"), "chaos READY")
            assert infer(s, "chaos", OP_CRASH).status_code == 503
            line = wait_for(lambda: [l for l in s.log if f"(restart {n})" in l], f"restart {n}")[0]
            delays.append(float(re.search(r"restarting it in ([\d.]+) s", line).group(1)))
        assert delays == [0.2, 0.4, 0.8, 0.8], delays  # doubling, up to the maximum
        wait_for(lambda: ready(s, "chaos"), "chaos READY")
        # (The log is read by a thread of its own: the last "restarted" line
        # may come in after READY is seen.)
        wait_for(lambda: sum("restarted" in l for l in s.log) >= 4, "4 restarted lines")
        # A restart never comes before its delay: crash time to restart time.
        stamps = []
        for line in s.log:
            m = re.match(r"\[(\d+-\d+-\d+ [\d:.]+)\]", line)
            if m and ("restarting it in" in line or "restarted" in line):
                stamps.append(time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%d %H:%M:%S"))
                              + float("0" + m.group(1)[19:]))
        gaps = [b - a for a, b in zip(stamps[0::2], stamps[1::2])]
        assert len(gaps) == 4 and all(g >= d - 0.002 for g, d in zip(gaps, delays)), (gaps, delays)
        assert index_entry(s, "chaos")["restarts"] == 4
    finally:
        assert s.stop() == 0, s.text()[-5000:]


@pytest.mark.parametrize("build", ["test", "release"])
def test_memory_limit_kills_the_worker(tmp_path, build):
    """The sanitizer build enforces the limit with the resident-memory
    watchdog, the release build with RLIMIT_AS (or a cgroup where the host
    delegates one): each must kill a worker that leaks past it."""
    repo = chaos_repo(tmp_path, {"leaky": ("memory_limit_bytes: 67108864", "")})
    path = binary() if build == "test" else release_binary()
    s = Server([repo, EXAMPLES], "--enable-test-backends", "--worker-restart-backoff-ms", "100",
               binary_path=path).start()
    try:
        mechanism = wait_for(lambda: re.search(r"memory limit 64.0 MiB per worker, enforced by (.*)",
                                               s.text()), "the mechanism in the log").group(1)
        assert mechanism in ("cgroup v2 memory.max", "RLIMIT_AS", "resident-memory watchdog")
        # Within the limit: fine.
        assert infer(s, "leaky", OP_LEAK, 8).status_code == 200
        # Past it: killed, during the request or (the watchdog polls) just after.
        r = infer(s, "leaky", OP_LEAK, 256)
        assert r.status_code in (200, 503), r.text
        if r.status_code == 503:
            assert "memory limit 64.0 MiB" in r.json()["error"], r.text
        entry = wait_for(lambda: (e := index_entry(s, "leaky")) and e.get("restarts") and e,
                         "the kill in the index")
        assert "killed: memory limit 64.0 MiB" in entry["last_failure"], entry
        wait_for(lambda: ready(s, "leaky"), "leaky READY again")
        assert infer(s, "leaky", OP_ECHO).status_code == 200
        assert add_sub_ok(s)
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def test_crash_loop_leaves_other_models_serving(tmp_path):
    """While one model's worker crashes again and again, another model (in
    its own worker) answers every request. Its latency is reported; the
    p99 ratio target is measured by bench/isolation.sh."""
    repo = chaos_repo(tmp_path, {"chaos": ("", ""), "steady": ("", "")})
    s = Server([repo], "--enable-test-backends", "--worker-restart-backoff-ms", "50",
               "--worker-max-restart-backoff-ms", "50").start()
    try:
        session = requests.Session()
        body = command_body(OP_ECHO)

        def steady_latencies(n):
            out = []
            for _ in range(n):
                t = time.perf_counter()
                r = session.post(f"{s.base}/v2/models/steady/infer", json=body, timeout=60)
                out.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
            return out

        alone = steady_latencies(200)
        stop = threading.Event()
        crashes = []

        def crash_loop():
            while not stop.is_set():
                if ready(s, "chaos"):
                    crashes.append(infer(s, "chaos", OP_CRASH).status_code)
                time.sleep(0.01)

        t = threading.Thread(target=crash_loop)
        t.start()
        try:
            wait_for(lambda: len(crashes) >= 1, "a first crash")
            during = steady_latencies(400)
            wait_for(lambda: len(crashes) >= 3, "three crashes")
        finally:
            stop.set()
            t.join()
        assert set(crashes) == {503}, crashes
        p99 = lambda xs: float(np.percentile(xs, 99))
        print(f"steady p99 alone {p99(alone) * 1e3:.2f} ms, during {len(crashes)} crashes "
              f"{p99(during) * 1e3:.2f} ms ({p99(during) / p99(alone):.2f}x)")
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def test_server_sigkill_leaves_no_worker_behind(tmp_path):
    repo = chaos_repo(tmp_path, {"a": ("", ""), "b": ("", "instance_group { count: 2 }")})
    s = Server([repo], "--enable-test-backends").start()
    workers = wait_for(lambda: len(children(s.proc.pid)) >= 3 and children(s.proc.pid),
                       "three workers")
    assert all(alive(p) for p in workers)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(30)
    wait_for(lambda: not any(alive(p) for p in workers), "every worker to die with the server",
             deadline_s=30)


def test_bad_isolation_settings_are_refused(tmp_path):
    import subprocess
    out = subprocess.run([str(binary()), "--model-repository", str(EXAMPLES),
                          "--default-isolation", "container"], capture_output=True, text=True)
    assert out.returncode != 0 and "--default-isolation" in out.stdout + out.stderr
    out = subprocess.run([str(binary()), "--model-repository", str(EXAMPLES),
                          "--worker-restart-backoff-ms", "500",
                          "--worker-max-restart-backoff-ms", "100"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "at least --worker-restart-backoff-ms" in out.stdout + out.stderr
    out = subprocess.run([str(binary()), "--model-repository", str(EXAMPLES),
                          "--worker-mailbox-bytes", "100"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "--worker-mailbox-bytes" in out.stdout + out.stderr
    # Without --enable-test-backends the chaos platform does not exist.
    repo = chaos_repo(tmp_path, {"chaos": ("", "")})
    s = Server([repo]).start()
    try:
        entry = index_entry(s, "chaos")
        assert entry["state"] == "UNAVAILABLE"
        assert "platform 'mmserve_chaos' is not supported" in entry["reason"], entry
    finally:
        assert s.stop() == 0


# ------------------------------------------------------------ same answers

def example_inputs(client, model, rng):
    meta = client.get_model_metadata(model)
    config = client.get_model_config(model)
    batch = config.get("max_batch_size", 0) > 0
    inputs = []
    for i in meta["inputs"]:
        shape = [int(d) for d in i["shape"]]
        shape = [3 if d < 0 else d for d in shape]
        if i["datatype"] == "BYTES":
            data = np.array([str(v).encode() for v in rng.integers(-1000, 1000, int(np.prod(shape)))],
                            dtype=np.object_).reshape(shape)
        elif i["datatype"] == "FP32":
            data = rng.standard_normal(shape).astype(np.float32)
        else:
            dtype = {"INT32": np.int32, "INT64": np.int64, "FP64": np.float64}[i["datatype"]]
            data = rng.integers(-100, 100, shape).astype(dtype)
        t = httpclient.InferInput(i["name"], list(data.shape), i["datatype"])
        t.set_data_from_numpy(data, binary_data=True)
        inputs.append(t)
    del batch
    return inputs


# The Python models of examples/models: always in worker processes.
PYTHON_EXAMPLES = {"add_sub_python", "sklearn_iris", "token_stream", "mlp_preprocess_bls"}


# "socket": a mailbox with no room in its slots, so every request and reply
# travels on the worker's socket instead (the path of oversized messages).
@pytest.mark.parametrize("mailbox", ["mailbox", "socket"])
def test_outputs_identical_in_process_and_in_workers(mailbox):
    in_process = Server([EXAMPLES]).start()
    tiny = ["--worker-mailbox-bytes", "256"] if mailbox == "socket" else []
    workers = Server([EXAMPLES], "--default-isolation", "process", *tiny).start()
    try:
        a = httpclient.InferenceServerClient(in_process.url)
        b = httpclient.InferenceServerClient(workers.url)
        # The ONNX, TorchScript and tree-model examples; the Python ones run
        # in workers in both servers.
        index = {m["name"] for m in a.get_model_repository_index()}
        models = ["add_sub", "credit_risk_xgboost", "house_price_lightgbm", "image_cnn",
                  "image_cnn_torch", "mlp_classifier", "string_int"]
        assert index == set(models) | PYTHON_EXAMPLES, index
        assert len(children(workers.proc.pid)) >= len(index)
        assert len(children(in_process.proc.pid)) == len(PYTHON_EXAMPLES)
        for model in models:
            for seed in range(3):
                inputs = example_inputs(a, model, np.random.default_rng(seed))
                ra, rb = a.infer(model, inputs), b.infer(model, inputs)
                for out in a.get_model_metadata(model)["outputs"]:
                    xa, xb = ra.as_numpy(out["name"]), rb.as_numpy(out["name"])
                    assert xa.dtype == xb.dtype and xa.shape == xb.shape, (model, out)
                    assert xa.tobytes() == xb.tobytes() if xa.dtype != np.object_ else \
                        list(xa.flat) == list(xb.flat), (model, out["name"])
        # A 4 MiB image: the shared-memory region grows to fit it.
        image = np.random.default_rng(7).standard_normal((1, 3, 512, 682)).astype(np.float32)
        t = httpclient.InferInput("image", list(image.shape), "FP32")
        t.set_data_from_numpy(image, binary_data=True)
        np.testing.assert_array_equal(a.infer("image_cnn", [t]).as_numpy("logits"),
                                      b.infer("image_cnn", [t]).as_numpy("logits"))
        a.close()
        b.close()
    finally:
        assert in_process.stop() == 0, in_process.text()[-3000:]
        assert workers.stop() == 0, workers.text()[-3000:]
