"""The PyTorch backend with what the server already has, through tritonclient
HTTP and gRPC: dynamic batching (batched answers bit-identical to unbatched
ones, and a batch of 4 seen in the statistics), modules in worker processes
(mmserve { isolation: PROCESS }), warmup, statistics with the three compute
stages, instance groups, a version swap under traffic, and the memory budget
with the measured footprint of a libtorch module.

No test waits for time to pass: batches form when all their requests are
queued (preferred_batch_size 4, a queue delay far above any test, exactly 4
concurrent requests), and every other wait polls for the state it needs.
"""
import threading
import time

import ml_dtypes
import numpy as np
import pytest
import requests
import torch
from tritonclient.utils import InferenceServerException

import torch_models as tm
from conftest import Server
from test_isolation import children
from test_observability import samples, value
from torch_client import (PROTOCOLS, Client, assert_bit_identical, index, load, model_config,
                          statistics, to_numpy, to_torch)

torch.set_num_threads(1)

BATCH_4 = "dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 60000000 }\n"
IN_WORKER = "mmserve { isolation: PROCESS }\n"


def wait_until(predicate, what, deadline_s=120):
    """Waits for a condition, not for a time: the deadline only turns a hang
    into a failure."""
    end = time.monotonic() + deadline_s
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("torch_serving")
    for protocol in PROTOCOLS:
        tm.write_elementwise(r, f"batched_{protocol}", extra=BATCH_4)
        tm.write_mlp(r, f"mlp_batched_{protocol}", extra=BATCH_4)
    tm.write_elementwise(r, "unbatched")
    tm.write_strings_batched(r, "strings_batched", extra=BATCH_4)
    # Whatever batches form under load (a short queue delay).
    any_batch = "dynamic_batching { max_queue_delay_microseconds: 2000 }\n"
    tm.write_elementwise(r, "batched_any", extra=any_batch)
    tm.write_alias_rows(r, "alias_any", extra=any_batch)
    tm.write_alias_rows(r, "alias_any_worker", extra=any_batch + IN_WORKER)
    tm.write_mlp(r, "mlp")
    # In worker processes.
    tm.write_named_index(r, "named_index_worker")
    (r / "named_index_worker" / "config.pbtxt").write_text(
        (r / "named_index_worker" / "config.pbtxt").read_text() + IN_WORKER)
    tm.write_mlp(r, "mlp_worker", extra=IN_WORKER)
    tm.write_raiser(r, "raiser_worker", extra=IN_WORKER)
    tm.write_strings(r, "strings_worker")
    (r / "strings_worker" / "config.pbtxt").write_text(
        (r / "strings_worker" / "config.pbtxt").read_text() + IN_WORKER)
    tm.write_dtype_identity(r, "BF16")
    cfg = (r / "identity_bf16" / "config.pbtxt").read_text()
    (r / "identity_bf16_worker").mkdir()
    (r / "identity_bf16_worker" / "config.pbtxt").write_text(
        cfg.replace('name: "identity_bf16"', 'name: "identity_bf16_worker"') + IN_WORKER)
    tm.write(r, "identity_bf16_worker", tm.DtypeIdentity(), None)
    tm.write_elementwise(r, "batched_worker", extra=BATCH_4 + IN_WORKER)
    # Warmup: zero data through the MLP; data that makes the module raise.
    tm.write_mlp(r, "warm", extra=(
        'model_warmup { name: "zeros" batch_size: 2 count: 2 inputs { key: "INPUT__0" '
        'value { data_type: TYPE_FP32 dims: [ 16 ] zero_data: true } } }\n'))
    tm.write_raiser(r, "warm_raises", extra=(
        'model_warmup { name: "negative" batch_size: 1 inputs { key: "INPUT__0" '
        'value { data_type: TYPE_FP32 dims: [ 3 ] input_data_file: "negative.bin" } } }\n'))
    (r / "warm_raises" / "warmup").mkdir()
    (r / "warm_raises" / "warmup" / "negative.bin").write_bytes(
        np.array([1.0, -1.0, 2.0], np.float32).tobytes())
    # Statistics and instance groups.
    tm.write_mlp(r, "stats_mlp")
    tm.write_raiser(r, "stats_raiser")
    tm.write_mlp(r, "two_instances", extra="instance_group [ { count: 2 kind: KIND_CPU } ]\n")
    return r


@pytest.fixture(scope="module")
def server(repo):
    s = Server([repo]).start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def test_every_model_but_the_failing_warmup_is_ready(server):
    idx = index(server)
    not_ready = {n: e.get("reason") for n, e in idx.items()
                 if e["state"] != "READY" and n != "warm_raises"}
    assert not not_ready, not_ready


# ---------------------------------------------------------------- batching


def send_together(server, protocol, model, rows):
    """One request per row, all at once (each on its own client): the batch
    of 4 forms when all are queued. Returns the outputs in row order."""
    results = [None] * len(rows)

    def one(i):
        c = Client(server, protocol)
        try:
            results[i] = c.infer(model, {"INPUT__0": rows[i]})
        except InferenceServerException as e:
            results[i] = e
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for r in results:
        assert isinstance(r, dict), str(r)
    return results


def assert_one_batch_of_4(server, model):
    st = statistics(server, model)
    assert st["execution_count"] == 1, st
    assert st["inference_count"] == 4, st
    sizes = {b["batch_size"]: b["compute_infer"]["count"] for b in st["batch_stats"]}
    assert sizes == {4: 1}, st["batch_stats"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_batched_outputs_are_bit_identical_to_unbatched(server, repo, protocol):
    rng = np.random.default_rng(100 + len(protocol))
    rows = [rng.standard_normal((1, 32)).astype(np.float32) for _ in range(4)]
    rows[1][0, :4] = [0.0, -0.0, np.inf, -np.inf]
    batched = send_together(server, protocol, f"batched_{protocol}", rows)
    assert_one_batch_of_4(server, f"batched_{protocol}")
    c = Client(server, protocol)
    try:
        single = [c.infer("unbatched", {"INPUT__0": row}) for row in rows]
    finally:
        c.close()
    module = tm.reference(repo, "unbatched")
    whole = module(to_torch(np.concatenate(rows)))
    for i, row in enumerate(rows):
        alone = module(to_torch(row))
        for o in range(2):
            name = f"OUTPUT__{o}"
            assert_bit_identical(batched[i][name], single[i][name], (i, name))
            assert_bit_identical(batched[i][name], to_numpy(alone[o]), (i, name, "torch"))
            assert_bit_identical(batched[i][name], to_numpy(whole[o][i:i + 1]), (i, name, "batch"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_batched_mlp_matches_torch(server, repo, protocol):
    rng = np.random.default_rng(200 + len(protocol))
    rows = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(4)]
    batched = send_together(server, protocol, f"mlp_batched_{protocol}", rows)
    assert_one_batch_of_4(server, f"mlp_batched_{protocol}")
    # The server ran the 4 rows as one [4, 16] tensor: exactly what torch here
    # gives for the same tensor, up to BLAS blocking and thread counts.
    want = to_numpy(tm.reference(repo, f"mlp_batched_{protocol}")(to_torch(np.concatenate(rows))))
    for i in range(4):
        np.testing.assert_allclose(batched[i]["OUTPUT__0"], want[i:i + 1], rtol=1e-5, atol=1e-7)


def test_a_batch_of_string_lists_answers_each_request_with_its_own(server, repo):
    words = [f"word {i} ünï" for i in range(4)]
    results = [None] * 4

    def one(i):
        c = Client(server, "grpc" if i % 2 else "http")
        try:
            results[i] = c.infer("strings_batched",
                                 {"words": np.array([[words[i].encode()]], dtype=np.object_)})
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert_one_batch_of_4(server, "strings_batched")
    want = tm.reference(repo, "strings_batched")(words)
    for i in range(4):
        got = results[i]["shout"]
        assert got.shape == (1, 1), got.shape
        assert got[0, 0] == want[i].encode(), (i, got, want)


@pytest.mark.parametrize("model", ["batched_any", "alias_any", "alias_any_worker"])
def test_every_request_gets_its_own_rows_under_concurrency(server, repo, model):
    """48 concurrent requests of 1 to 3 rows: however they are batched, each
    answer is its own rows' (bit for bit), never a neighbour's."""
    module = tm.reference(repo, model)
    n = 48
    if model == "batched_any":
        make = lambda i: np.random.default_rng(500 + i).standard_normal(  # noqa: E731
            (1 + i % 3, 32)).astype(np.float32)
    else:
        make = lambda i: (np.arange(5 * (1 + i % 3), dtype=np.int64)  # noqa: E731
                          .reshape(1 + i % 3, 5) + 1000 * i)
    rows = [make(i) for i in range(n)]
    results = [None] * n

    def one(i):
        c = Client(server, PROTOCOLS[i % 2])
        try:
            results[i] = c.infer(model, {"INPUT__0": rows[i]})
        except InferenceServerException as e:
            results[i] = e
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for i in range(n):
        assert isinstance(results[i], dict), (i, str(results[i]))
        want = module(to_torch(rows[i]))
        for o in range(2):
            assert_bit_identical(results[i][f"OUTPUT__{o}"], to_numpy(want[o]), (i, o))
    st = statistics(server, model)
    assert st["inference_count"] == sum(len(r) for r in rows), st


# ---------------------------------------------------------- worker processes


def test_the_modules_run_in_worker_processes(server):
    # One worker per instance of each PROCESS model (7 models, 1 instance).
    assert len(children(server.proc.pid)) >= 7


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_models_in_workers_match_torch(server, repo, protocol):
    c = Client(server, protocol)
    try:
        a, b = np.arange(4, dtype=np.float32), np.full(4, 0.25, np.float32)
        got = c.infer("named_index_worker", {"INPUT__0": a, "INPUT__1": b})
        want = tm.reference(repo, "named_index_worker")(to_torch(a), to_torch(b))
        assert_bit_identical(got["OUTPUT__0"], to_numpy(want[0]))
        assert_bit_identical(got["OUTPUT__1"], to_numpy(want[1]))

        x = np.random.default_rng(3).standard_normal((3, 16)).astype(np.float32)
        got = c.infer("mlp_worker", {"INPUT__0": x})["OUTPUT__0"]
        np.testing.assert_allclose(got, to_numpy(tm.reference(repo, "mlp_worker")(to_torch(x))),
                                   rtol=1e-5, atol=1e-7)
        # In a worker and in the server: the same libtorch, the same bits.
        assert_bit_identical(got, c.infer("mlp", {"INPUT__0": x})["OUTPUT__0"])

        words = ["one", "two", ""]
        got = c.infer("strings_worker", {"words": np.array([w.encode() for w in words],
                                                           dtype=np.object_)})
        shout, lengths = tm.reference(repo, "strings_worker")(words)
        assert list(got["shout__0"]) == [s.encode() for s in shout]
        assert_bit_identical(got["lengths__1"], to_numpy(lengths))

        bits = np.random.default_rng(4).integers(0, 2**16, (2, 3), dtype=np.uint16)
        x = bits.view(ml_dtypes.bfloat16)
        got = c.infer("identity_bf16_worker", {"INPUT__0": x})
        assert_bit_identical(got["OUTPUT__0"], x)
        assert_bit_identical(got["OUTPUT__1"], x.T)
        assert_bit_identical(got["OUTPUT__0"], c.infer("identity_bf16", {"INPUT__0": x})["OUTPUT__0"])
    finally:
        c.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_raise_in_a_worker_fails_only_that_request(server, protocol):
    c = Client(server, protocol)
    try:
        with pytest.raises(InferenceServerException) as e:
            c.infer("raiser_worker", {"INPUT__0": np.array([-1.0], np.float32)})
        message = str(e.value)
        assert "model 'raiser_worker'" in message and tm.RAISE_MESSAGE in message, message
        good = np.array([1.5, 2.0], np.float32)
        assert_bit_identical(c.infer("raiser_worker", {"INPUT__0": good})["OUTPUT__0"], good * 2)
    finally:
        c.close()
    # The worker lived: no restart.
    entry = requests.post(server.base + "/v2/repository/index", timeout=60).json()
    [raiser] = [m for m in entry if m["name"] == "raiser_worker"]
    assert raiser["state"] == "READY" and not raiser.get("restarts"), raiser


def test_a_batch_in_a_worker_is_bit_identical(server, repo):
    rows = [np.random.default_rng(300 + i).standard_normal((1, 32)).astype(np.float32)
            for i in range(4)]
    batched = send_together(server, "grpc", "batched_worker", rows)
    assert_one_batch_of_4(server, "batched_worker")
    module = tm.reference(repo, "batched_worker")
    for i, row in enumerate(rows):
        alone = module(to_torch(row))
        for o in range(2):
            assert_bit_identical(batched[i][f"OUTPUT__{o}"], to_numpy(alone[o]), (i, o))


# ------------------------------------------------------------------ warmup


def test_warmup_runs_the_module_before_ready(server, repo):
    assert index(server)["warm"]["state"] == "READY"
    x = np.ones((1, 16), np.float32)
    c = Client(server, "http")
    try:
        got = c.infer("warm", {"INPUT__0": x})["OUTPUT__0"]
    finally:
        c.close()
    np.testing.assert_allclose(got, to_numpy(tm.reference(repo, "warm")(to_torch(x))),
                               rtol=1e-5, atol=1e-7)
    # Warmup ran the module: data that makes it raise fails the load.
    entry = index(server)["warm_raises"]
    assert entry["state"] == "UNAVAILABLE", entry
    assert "warmup" in entry["reason"] and tm.RAISE_MESSAGE in entry["reason"], entry


# -------------------------------------------------------------- statistics


def test_statistics_count_the_three_compute_stages(server):
    x = np.random.default_rng(5).standard_normal((2, 16)).astype(np.float32)
    sent = 0
    for protocol in PROTOCOLS:
        c = Client(server, protocol)
        try:
            for _ in range(3):
                c.infer("stats_mlp", {"INPUT__0": x})
                sent += 1
        finally:
            c.close()
    st = statistics(server, "stats_mlp")
    inf = st["inference_stats"]
    assert inf["success"]["count"] == sent, inf
    assert st["inference_count"] == 2 * sent and st["execution_count"] == sent, st
    for stage in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert inf[stage]["count"] == sent, (stage, inf)
    assert inf["compute_infer"]["ns"] > 0, inf
    # A raise counts as a failure, not a success.
    c = Client(server, "http")
    try:
        c.infer("stats_raiser", {"INPUT__0": np.ones(2, np.float32)})
        with pytest.raises(InferenceServerException):
            c.infer("stats_raiser", {"INPUT__0": -np.ones(2, np.float32)})
    finally:
        c.close()
    inf = statistics(server, "stats_raiser")["inference_stats"]
    assert inf["success"]["count"] == 1 and inf["fail"]["count"] == 1, inf


# ----------------------------------------------------------- instance groups


def test_two_instances_serve_concurrent_requests(server, repo):
    cfg = model_config(server, "two_instances")
    assert [(g.get("count"), g.get("kind")) for g in cfg["instance_group"]] == [(2, "KIND_CPU")]
    module = tm.reference(repo, "two_instances")
    rows = [np.random.default_rng(400 + i).standard_normal((1, 16)).astype(np.float32)
            for i in range(16)]
    results = [None] * len(rows)

    def one(i):
        c = Client(server, "grpc" if i % 2 else "http")
        try:
            results[i] = c.infer("two_instances", {"INPUT__0": rows[i]})["OUTPUT__0"]
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for i, row in enumerate(rows):
        np.testing.assert_allclose(results[i], to_numpy(module(to_torch(row))), rtol=1e-5,
                                   atol=1e-7)
    assert statistics(server, "two_instances")["inference_stats"]["success"]["count"] == 16


# ------------------------------------------------------------------ tracing


def test_a_traced_request_has_the_three_compute_stages(tmp_path):
    import json

    tm.write_mlp(tmp_path, "traced")
    path = tmp_path / "traces.jsonl"
    s = Server([tmp_path], "--trace-file", path, "--trace-rate", "1",
               "--trace-flush-ms", "20").start()
    try:
        c = Client(s, "http")
        try:
            c.infer("traced", {"INPUT__0": np.ones((2, 16), np.float32)})
        finally:
            c.close()

        def spans():
            if not path.exists():
                return []
            return [sp for line in path.read_text().splitlines() if line
                    for rs in json.loads(line)["resourceSpans"]
                    for ss in rs["scopeSpans"] for sp in ss["spans"]]

        stages = {"decode", "queue", "compute_input", "compute_infer", "compute_output", "encode"}

        def complete():
            found = spans()
            return found if stages <= {sp["name"] for sp in found} else None

        got = wait_until(complete, "the request's spans")
        by_name = {sp["name"]: sp for sp in got}
        assert len({sp["traceId"] for sp in got}) == 1
        for stage in ("compute_input", "compute_infer", "compute_output"):
            span = by_name[stage]
            assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]), span
        infer = by_name["compute_infer"]
        assert int(infer["endTimeUnixNano"]) > int(infer["startTimeUnixNano"]), infer
    finally:
        assert s.stop() == 0, s.text()[-5000:]


# ------------------------------------------------------------ version swap


def test_a_version_swap_under_traffic(tmp_path):
    tm.write_offset(tmp_path, "m", 1, 1.0)
    s = Server([tmp_path], "--model-control-mode", "poll", "--repository-poll-secs", "0.1").start()
    stop = threading.Event()
    seen, errors = [], []
    x = np.arange(4, dtype=np.float32)

    def client(protocol):
        c = Client(s, protocol)
        try:
            while not stop.is_set():
                try:
                    result = c.client.infer("m", c.inputs({"x": x}))
                except InferenceServerException as e:
                    errors.append(str(e))
                    continue
                response = result.get_response()
                version = response.model_version if protocol == "grpc" else response["model_version"]
                seen.append((str(version), result.as_numpy("y")))
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(p,)) for p in PROTOCOLS]
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(seen) > 10 or errors, "answers from version 1")
        assert errors == [], errors[:5]
        tm.write_offset(tmp_path, "m", 2, 2.0)
        wait_until(lambda: any(v == "2" for v, _ in seen), "the switch to version 2")
        n = len(seen)
        wait_until(lambda: len(seen) > n + 20, "answers after the switch")
        stop.set()
        for t in threads:
            t.join(120)
        assert errors == [], errors[:5]
        for version, y in seen:
            assert_bit_identical(y, x + np.float32(int(version)), version)
        wait_until(lambda: index_versions(s, "m") == {"2": "READY", "1": "UNAVAILABLE"},
                   "version 1 to unload")
    finally:
        stop.set()
        assert s.stop() == 0, s.text()[-5000:]


def index_versions(server, name):
    r = requests.post(server.base + "/v2/repository/index", timeout=60)
    return {m.get("version", ""): m["state"] for m in r.json() if m["name"] == name}


# ------------------------------------------------------------ memory budget

WEIGHTS = 8 << 20  # floats: 32 MiB of weights per "big" model


def footprint(server, name):
    text = requests.get(server.metrics_url, timeout=60).text
    return value(samples(text), "mmserve_model_memory_bytes", model=name)


def test_the_footprint_counts_the_weights_and_drives_eviction(tmp_path):
    for name in ("big_a", "big_b"):
        tm.write_big(tmp_path, name, WEIGHTS)
    tm.write_forward_arguments(tmp_path, "tiny")
    weight_bytes = 4 * WEIGHTS
    budget = weight_bytes + weight_bytes // 2  # one fits, two do not
    s = Server([tmp_path], "--model-control-mode", "explicit",
               "--model-memory-budget", str(budget)).start()
    try:
        c = Client(s, "http")
        x = np.zeros(4, np.float32)
        # The first PyTorch model of the process: libtorch's own set-up is
        # not its footprint.
        assert load(s, "tiny").status_code == 200
        tiny = footprint(s, "tiny")
        assert tiny < 16 << 20, f"a model without weights counted {tiny} bytes"
        r = load(s, "big_a")
        assert r.status_code == 200, r.text
        a = footprint(s, "big_a")
        # RSS growth across the load: at least the weights (less a margin for
        # pages the process happened to give back meanwhile).
        assert a >= 0.9 * weight_bytes, f"32 MiB of weights counted as {a} bytes"
        assert a <= 2 * weight_bytes, f"32 MiB of weights counted as {a} bytes"
        want = to_numpy(tm.reference(tmp_path, "big_a")(to_torch(x)))
        assert_bit_identical(c.infer("big_a", {"INPUT__0": x})["OUTPUT__0"], want)
        # big_b does not fit beside big_a: the least recently used goes.
        r = load(s, "big_b")
        assert r.status_code == 200, r.text
        idx = index(s)
        assert idx["big_b"]["state"] == "READY", idx["big_b"]
        assert idx["big_a"]["state"] == "UNAVAILABLE", idx["big_a"]
        assert "evicted" in idx["big_a"]["reason"], idx["big_a"]
        assert footprint(s, "big_a") == 0
        c.close()
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def test_two_instances_hold_the_weights_twice_unless_they_share_them(tmp_path):
    two = "instance_group [ { count: 2 kind: KIND_CPU } ]\n"
    shared = 'parameters { key: "ENABLE_WEIGHT_SHARING" value { string_value: "true" } }\n'
    tm.write_big(tmp_path, "separate", WEIGHTS, extra=two)
    tm.write_big(tmp_path, "shared", WEIGHTS, extra=two + shared)
    weight_bytes = 4 * WEIGHTS
    s = Server([tmp_path], "--model-control-mode", "explicit").start()
    try:
        for name in ("separate", "shared"):
            r = load(s, name)
            assert r.status_code == 200, r.text
        separate, shared = footprint(s, "separate"), footprint(s, "shared")
        assert separate >= 1.8 * weight_bytes, (separate, weight_bytes)
        assert shared < 1.5 * weight_bytes, (shared, weight_bytes)
        x = np.ones(4, np.float32)
        c = Client(s, "grpc")
        try:
            for name in ("separate", "shared"):
                want = to_numpy(tm.reference(tmp_path, name)(to_torch(x)))
                assert_bit_identical(c.infer(name, {"INPUT__0": x})["OUTPUT__0"], want)
        finally:
            c.close()
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def test_load_and_unload_cycles_serve_every_time_and_leak_nothing(tmp_path):
    """The sanitizer build reports any leak when the server stops."""
    tm.write_mlp(tmp_path, "cycled", extra="instance_group [ { count: 2 kind: KIND_CPU } ]\n")
    x = np.random.default_rng(9).standard_normal((2, 16)).astype(np.float32)
    want = to_numpy(tm.reference(tmp_path, "cycled")(to_torch(x)))
    s = Server([tmp_path], "--model-control-mode", "explicit").start()
    try:
        for i in range(10):
            r = load(s, "cycled")
            assert r.status_code == 200, r.text
            c = Client(s, PROTOCOLS[i % 2])
            try:
                np.testing.assert_allclose(c.infer("cycled", {"INPUT__0": x})["OUTPUT__0"], want,
                                           rtol=1e-5, atol=1e-7)
            finally:
                c.close()
            r = requests.post(f"{s.base}/v2/repository/models/cycled/unload", timeout=300)
            assert r.status_code == 200, r.text
            wait_until(lambda: index(s)["cycled"]["state"] == "UNAVAILABLE", "the unload")
    finally:
        assert s.stop() == 0, s.text()[-5000:]
