"""Tree models with what the server already has, for each engine (XGBoost,
LightGBM, Treelite for scikit-learn checkpoints and for the legacy binary
type): dynamic batching (64 concurrent requests; every answer bit-identical
to the unbatched answer for the same rows), a model in a worker process
(mmserve { isolation: PROCESS }), instance_group count 2 (one model shared by
the instances, its size counted once), the footprint (the library's own size
of the model: exact, deterministic, the same for the same file), and a memory
budget that holds N tree models evicting the least recently used one on the
N+1th (explicit mode, on-demand loading).

No test waits for time to pass: the batch of 64 forms when all 64 requests
are queued (preferred_batch_size 64, a queue delay far above any test), and
every other check holds whatever batches form.
"""
import threading
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

import fil_models as fm
from conftest import Server
from test_isolation import children
from test_observability import samples, value

ENGINES = ("xgboost_json", "lightgbm", "treelite_checkpoint", "xgboost")
BATCH_64 = ("dynamic_batching { preferred_batch_size: [ 64 ] "
            "max_queue_delay_microseconds: 60000000 }\n")
ANY_BATCH = "dynamic_batching { max_queue_delay_microseconds: 2000 }\n"
IN_WORKER = "mmserve { isolation: PROCESS }\n"
TWO = 'instance_group [ { count: 2 kind: KIND_CPU } ]\n'


def variant(model_type):
    return fm.Variant(model_type, model_type, "binary", True, True, 2)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = tmp_path_factory.mktemp("fil_lifecycle")
    refs = {}
    for t in ENGINES:
        v = variant(t)
        refs[t] = fm.write_variant(r, v, f"unbatched_{t}")
        fm.write_variant(r, v, f"batched_{t}", extra=BATCH_64)
        fm.write_variant(r, v, f"any_{t}", extra=ANY_BATCH)
        fm.write_variant(r, v, f"worker_{t}", extra=IN_WORKER)
        fm.write_variant(r, v, f"two_{t}")
        cfg = (r / f"two_{t}" / "config.pbtxt").read_text()
        (r / f"two_{t}" / "config.pbtxt").write_text(cfg.replace("count: 1", "count: 2"))
        # A bigger model of the same kind (more trees): a bigger footprint.
        if t == "treelite_checkpoint":
            fm.write_sklearn(r, f"bigger_{t}", "rf", "multiclass",
                             **variant(t).config_args(3) | {"output_dims": (3,)})
        elif t == "lightgbm":
            fm.write_lightgbm(r, f"bigger_{t}", "binary", rounds=60, **v.config_args(2))
        elif t == "xgboost_json":
            fm.write_xgboost(r, f"bigger_{t}", "binary", t, rounds=60, **v.config_args(2))
    return r, refs


@pytest.fixture(scope="module")
def server(repo):
    s = Server([repo[0]]).start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def statistics(server, name):
    r = requests.get(f"{server.base}/v2/models/{name}/stats", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["model_stats"][0]


def footprint(server, name):
    text = requests.get(server.metrics_url, timeout=60).text
    return int(value(samples(text), "mmserve_model_memory_bytes", model=name))


def index(server):
    r = requests.post(server.base + "/v2/repository/index", timeout=60)
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def test_every_model_is_ready(server):
    not_ready = {n: e.get("reason") for n, e in index(server).items() if e["state"] != "READY"}
    assert not not_ready, not_ready


def concurrently(server, model, requests_rows):
    """One request per entry, all at once, each on its own client (HTTP and
    gRPC alternately). Returns the answers in order."""
    results = [None] * len(requests_rows)

    def one(i):
        try:
            results[i] = fm.infer(server, fm.PROTOCOLS[i % 2], model, requests_rows[i])
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests_rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for r in results:
        assert isinstance(r, np.ndarray), repr(r)
    return results


def assert_bit_identical(got, want, what):
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.shape, want.shape)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg=what)


@pytest.mark.parametrize("model_type", ENGINES)
def test_a_batch_of_64_answers_as_64_single_requests(server, repo, model_type):
    x = fm.rows(n_rows=64, seed=11)
    singles = [x[i:i + 1] for i in range(64)]
    alone = [fm.infer(server, "http", f"unbatched_{model_type}", row) for row in singles]
    batched = concurrently(server, f"batched_{model_type}", singles)
    for i in range(64):
        assert_bit_identical(batched[i], alone[i], f"row {i}")
    st = statistics(server, f"batched_{model_type}")
    assert st["execution_count"] == 1 and st["inference_count"] == 64, st
    assert {b["batch_size"]: b["compute_infer"]["count"] for b in st["batch_stats"]} == {64: 1}
    # And the framework's answer.
    fm.assert_matches(repo[1][model_type], np.concatenate(batched), x, model_type,
                      **variant(model_type).rule())


@pytest.mark.parametrize("model_type", ENGINES)
def test_whatever_batches_form_the_answers_are_the_unbatched_ones(server, model_type):
    rng = np.random.default_rng(12)
    reqs = [fm.rows(n_rows=int(rng.integers(1, 6)), seed=100 + i) for i in range(64)]
    want = [fm.infer(server, "grpc", f"unbatched_{model_type}", x) for x in reqs]
    got = concurrently(server, f"any_{model_type}", reqs)
    for i in range(64):
        assert_bit_identical(got[i], want[i], f"request {i}")


@pytest.mark.parametrize("model_type", ENGINES)
def test_a_worker_process_model_answers_the_same(server, repo, model_type):
    x = fm.rows()
    for protocol in fm.PROTOCOLS:
        got = fm.infer(server, protocol, f"worker_{model_type}", x)
        assert_bit_identical(got, fm.infer(server, protocol, f"unbatched_{model_type}", x),
                             f"worker_{model_type}")
    fm.assert_matches(repo[1][model_type], got, x, model_type, **variant(model_type).rule())
    workers = [p for p in children(server.proc.pid)
               if b"--worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert workers, "no worker process"


@pytest.mark.parametrize("model_type", ENGINES)
def test_two_instances_share_one_model(server, repo, model_type):
    r = requests.get(f"{server.base}/v2/models/two_{model_type}/config", timeout=60)
    assert r.json()["instance_group"][0]["count"] == 2, r.text
    reqs = [fm.rows(n_rows=3, seed=200 + i) for i in range(32)]
    got = concurrently(server, f"two_{model_type}", reqs)
    for i, x in enumerate(reqs):
        assert_bit_identical(got[i], fm.infer(server, "http", f"unbatched_{model_type}", x),
                             f"request {i}")
    # Its size counted once: the same as the one-instance model's.
    assert footprint(server, f"two_{model_type}") == footprint(server, f"unbatched_{model_type}")


# ----------------------------------------------------------------- footprint


def format_bytes(n):
    """src/core/memory.cc FormatBytes, for the log line."""
    if n < 1024:
        return f"{n} B"
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    unit, v = 1, n / 1024.0
    while v >= 1023.95 and unit + 1 < len(units):
        v /= 1024.0
        unit += 1
    s = f"{v:.2f}" if v < 9.995 else f"{v:.1f}"
    if v < 9.995 and s.endswith("0"):
        s = s[:-1]
    return f"{s} {units[unit]}"


@pytest.mark.parametrize("model_type", ENGINES)
def test_the_footprint_is_the_librarys_size_of_the_model(server, repo, model_type):
    names = [f"{k}_{model_type}" for k in ("unbatched", "batched", "any", "two")]
    sizes = {n: footprint(server, n) for n in names}
    # The same file, the same figure: not a heap delta.
    assert len(set(sizes.values())) == 1, sizes
    f = sizes[names[0]]
    assert f > 0
    # The library's figure (fil_models.library_footprint: the engine's
    # documented formula, recomputed from the model as the library loads it).
    want = fm.library_footprint(model_type, repo[1][model_type].path)
    assert f == want, (f, want)
    if model_type != "xgboost":
        bigger = footprint(server, f"bigger_{model_type}")
        assert bigger > f, (bigger, f)
    # The log says it as the READY line does.
    lines = [line for line in server.log
             if f"model '{names[0]}' version 1 is READY ({format_bytes(f)} footprint, "
             "the library's size of the model" in line]
    assert lines, (format_bytes(f), server.text()[-3000:])


@pytest.mark.parametrize("model_type", ["xgboost_json", "lightgbm", "treelite_checkpoint"])
def test_a_budget_for_three_evicts_the_least_recently_used_on_the_fourth(tmp_path, model_type):
    for name in "abcd":
        fm.write_variant(tmp_path, variant(model_type), name)
    # The footprint of this file (every copy has the same).
    probe = Server([tmp_path], "--model-control-mode", "explicit", "--load-model", "a").start()
    try:
        f = footprint(probe, "a")
    finally:
        assert probe.stop() == 0, probe.text()[-5000:]
    s = Server([tmp_path], "--model-control-mode", "explicit",
               "--model-memory-budget", str(3 * f + f // 2)).start()
    x = fm.rows(n_rows=4)
    try:
        c = httpclient.InferenceServerClient(s.url)
        for name in "abca":  # on demand; a is then more recent than b
            fm.infer(s, "http", name, x, c=c)
        idx = index(s)
        assert all(idx[n]["state"] == "READY" for n in "abc"), idx
        fm.infer(s, "grpc", "d", x)  # evicts b, the least recently used
        idx = index(s)
        assert idx["b"]["state"] == "UNAVAILABLE" and "evicted" in idx["b"]["reason"], idx["b"]
        assert all(idx[n]["state"] == "READY" for n in "acd"), idx
        assert all(footprint(s, n) == f for n in "acd")
        # b comes back on demand, evicting c (now the least recent).
        fm.infer(s, "http", "b", x, c=c)
        idx = index(s)
        assert idx["c"]["state"] == "UNAVAILABLE" and "evicted" in idx["c"]["reason"], idx["c"]
        c.close()
    finally:
        assert s.stop() == 0, s.text()[-5000:]
