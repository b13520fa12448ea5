"""--model-repository s3://BUCKET/PREFIX against a real S3-compatible server
(moto in server mode, with IAM auth and SigV4 checks on), through a proxy
that cuts, corrupts, stalls or refuses on demand (s3_server.py).

Each test has its own prefix in the shared store and its own reader key, so
that revoking one never touches another. No test waits on time: a fault is
an event the proxy reports, a change is polled for with a deadline.
"""
import hashlib
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import requests
import tritonclient.http as httpclient
from onnx import TensorProto, helper

from conftest import EXAMPLES, Server, wait_for_log
from s3_server import FaultProxy, MotoServer, tmpfs

BUCKET = "models"
OTHER = "other-bucket"


# --------------------------------------------------------------------- models
def plus_model(c):
    """y = x + c, x and y FP32 [-1, 4]: the output says which copy answered."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], "plus",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 4])],
        [helper.make_tensor("c", TensorProto.FLOAT, [4], [float(c)] * 4)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def infer_plus(url, name, timeout=60):
    """The model's c: what it adds to zeros."""
    client = httpclient.InferenceServerClient(url, network_timeout=timeout)
    x = httpclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    y = client.infer(name, [x]).as_numpy("y")
    return float(y[0][0])


class PlusTraffic:
    """Requests to a y = x + c model in a loop on a thread of its own: `seen`
    holds each answer's c, `failures` each failed request."""

    def __init__(self, url, name):
        self.url, self.name = url, name
        self.stop_event, self.seen, self.failures = threading.Event(), [], []
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        client = httpclient.InferenceServerClient(self.url, network_timeout=60)
        x = httpclient.InferInput("x", [1, 4], "FP32")
        x.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
        while not self.stop_event.is_set():
            try:
                self.seen.append(float(client.infer(self.name, [x]).as_numpy("y")[0][0]))
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.failures.append(repr(e))

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(120)

    def assert_swapped(self, before, after):
        """No failure; every answer was `before` until the first `after`, then `after`."""
        assert self.failures == [], self.failures[:5]
        first = self.seen.index(after)
        assert set(self.seen[:first]) == {before} and set(self.seen[first:]) == {after}


def random_bytes(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# ---------------------------------------------------------------------- store
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with MotoServer(tmp_path_factory.mktemp("moto")) as moto:
        moto.create_bucket(BUCKET)
        moto.create_bucket(OTHER)
        moto.enable_auth()
        with FaultProxy(moto.endpoint) as proxy:
            yield moto, proxy


@pytest.fixture()
def s3(store):
    moto, proxy = store
    proxy.clear()
    yield moto, proxy
    proxy.clear()


def aws_env(key):
    key_id, secret = key
    return {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None, "AWS_ENDPOINT_URL": None,
            "AWS_ENDPOINT_URL_S3": None, "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


def serve(repos, endpoint, key, cache, *extra, start=True, wait_ready=True):
    server = Server(repos, "--s3-endpoint", endpoint, "--model-cache-dir", cache, *extra,
                    env=aws_env(key))
    if start:
        server.start(wait_ready=wait_ready)
    return server


def put_plus(moto, prefix, name, c, config=True, bucket=BUCKET, extra=None):
    if config:
        moto.put(bucket, f"{prefix}/{name}/config.pbtxt",
                 f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'.encode())
    moto.put(bucket, f"{prefix}/{name}/1/model.onnx", plus_model(c))
    for path, data in (extra or {}).items():
        moto.put(bucket, f"{prefix}/{name}/1/{path}", data)


def index(server):
    r = requests.post(server.base + "/v2/repository/index", json={}, timeout=120)
    assert r.status_code == 200, r.text
    return {(m["name"], m.get("version", "")): m for m in r.json()}


def load(server, name):
    return requests.post(f"{server.base}/v2/repository/models/{name}/load", timeout=300)


def unload(server, name):
    return requests.post(f"{server.base}/v2/repository/models/{name}/unload", timeout=120)


def wait_until(what, check, deadline_s=60):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_secret(server, key):
    assert key[1] not in server.text(), "the secret access key is in the log"


# ------------------------------------------------------------------ listing
def test_serves_s3_models_beside_a_local_folder(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    moto.upload_tree(BUCKET, "t1/add_sub", EXAMPLES / "add_sub")
    put_plus(moto, "t1", "plus_one", 1, config=False)  # configless: ONNX from the listing
    local = tmp_path / "local"
    (local / "plus_two" / "1").mkdir(parents=True)
    (local / "plus_two" / "1" / "model.onnx").write_bytes(plus_model(2))
    server = serve([f"s3://{BUCKET}/t1", local], proxy.endpoint, key, tmp_path / "cache")
    try:
        states = index(server)
        for name in ("add_sub", "plus_one", "plus_two"):
            assert states[(name, "1")]["state"] == "READY", states
        assert infer_plus(server.url, "plus_one") == 1.0
        assert infer_plus(server.url, "plus_two") == 2.0
        client = httpclient.InferenceServerClient(server.url)
        a = np.arange(4, dtype=np.float32)
        inputs = [httpclient.InferInput("INPUT0", [4], "FP32"),
                  httpclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(a)
        out = client.infer("add_sub", inputs)
        np.testing.assert_array_equal(out.as_numpy("OUTPUT0"), a + a)
        meta = client.get_model_metadata("plus_one")
        assert [i["name"] for i in meta["inputs"]] == ["x"], meta
        assert_no_secret(server, key)
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_a_version_is_fetched_once_and_found_again_after_a_restart(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    put_plus(moto, "t2", "m", 5, extra={"weights.bin": random_bytes(3 << 20, 2)})
    cache = tmp_path / "cache"
    weights = f"/{BUCKET}/t2/m/1/weights.bin"
    for run in range(2):
        server = serve([f"s3://{BUCKET}/t2"], proxy.endpoint, key, cache)
        try:
            assert infer_plus(server.url, "m") == 5.0
            if run == 1:
                assert "using the cached copy" in server.text(), server.text()[-3000:]
        finally:
            assert server.stop() == 0, server.text()[-3000:]
        assert proxy.requests(weights) == 1, proxy.log  # fetched by the first run only
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1, entries
    assert (entries[0] / "1" / "weights.bin").stat().st_size == 3 << 20
    assert not any((cache / ".staging").iterdir())


def test_large_objects_come_in_parallel_ranged_parts_and_whole(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    put_plus(moto, "t3", "m", 3)
    single = moto.upload_large(BUCKET, "t3/m/1/single.bin", 40 << 20, single_part=True)
    multi = moto.upload_large(BUCKET, "t3/m/1/multi.bin", 20 << 20)
    assert "-" in multi.etag and "-" not in single.etag
    cache = tmp_path / "cache"
    server = serve([f"s3://{BUCKET}/t3"], proxy.endpoint, key, cache)
    try:
        assert infer_plus(server.url, "m") == 3.0
    finally:
        assert server.stop() == 0, server.text()[-3000:]
    # 40 MiB in 8 MiB parts, checked against the CRC32 the store keeps
    # (boto3 sent one with the upload), which a HEAD asked for first.
    single_log = [(m, s) for (m, target, s) in proxy.log if target.endswith("/t3/m/1/single.bin")]
    assert single_log == [("HEAD", 200)] + [("GET", 206)] * 5, proxy.log
    [entry] = [p for p in cache.iterdir() if not p.name.startswith(".")]
    for obj, name in ((single, "single.bin"), (multi, "multi.bin")):
        data = (entry / "1" / name).read_bytes()
        assert len(data) == obj.size and hashlib.md5(data).hexdigest() == obj.md5, name


def test_a_long_download_shows_its_progress_in_the_index_and_the_log(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    put_plus(moto, "t4", "m", 4, extra={"weights.bin": random_bytes(8 << 20, 4)})
    release = threading.Event()
    reached = proxy.stall("/t4/m/1/weights.bin", 1 << 20, release)
    server = serve([f"s3://{BUCKET}/t4"], proxy.endpoint, key, tmp_path / "cache",
                   "--model-control-mode", "explicit")
    try:
        answer = {}
        loader = threading.Thread(target=lambda: answer.update(r=load(server, "m")))
        loader.start()
        assert reached.wait(60)
        # Held after 1 MiB of 8: the index says how far it got, and so does
        # the log (every 5 s while nothing moves).
        reason = wait_until("progress in the index", lambda: next(
            (m.get("reason", "") for m in index(server).values()
             if m["name"] == "m" and "of 8.0 MiB" in m.get("reason", "")), None))
        assert reason.startswith("fetching ") and f"s3://{BUCKET}/t4" in reason, reason
        assert index(server)[("m", "1")]["state"] == "LOADING"
        wait_for_log(server, "fetched 1.0 MiB of 8.0 MiB (12%)")
        release.set()
        loader.join(120)
        assert answer["r"].status_code == 200, answer["r"].text
        assert infer_plus(server.url, "m") == 4.0
        assert index(server)[("m", "1")].get("reason", "") == ""
    finally:
        release.set()
        assert server.stop() == 0, server.text()[-3000:]


def test_a_server_that_stops_stops_its_downloads(s3, tmp_path):
    """SIGTERM during a download that is going nowhere: the fetch stops (the
    server does not wait out --exit-timeout-secs for it), the server exits
    cleanly, and no half-fetched copy is left in the cache."""
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    put_plus(moto, "t4s", "m", 4, extra={"weights.bin": random_bytes(8 << 20, 5)})
    release = threading.Event()
    reached = proxy.stall("/t4s/m/1/weights.bin", 1 << 20, release)
    cache = tmp_path / "cache"
    server = serve([f"s3://{BUCKET}/t4s"], proxy.endpoint, key, cache,
                   "--model-control-mode", "explicit", "--exit-timeout-secs", "300")
    try:
        loader = threading.Thread(target=lambda: load(server, "m"), daemon=True)
        loader.start()
        assert reached.wait(60)
        assert server.stop() == 0, server.text()[-3000:]
        assert "stopped before it finished" in server.text(), server.text()[-3000:]
        assert not [p for p in cache.rglob("*") if p.is_file() and p.name != ".lock"], \
            list(cache.rglob("*"))
    finally:
        release.set()
        server.stop()


# ---------------------------------------------------------- change detection
def test_an_etag_change_swaps_the_version_under_traffic(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    put_plus(moto, "t5", "m", 1)
    server = serve([f"s3://{BUCKET}/t5"], proxy.endpoint, key, tmp_path / "cache",
                   "--model-control-mode", "poll", "--repository-poll-secs", "0.2")
    traffic = PlusTraffic(server.url, "m")
    seen = traffic.seen
    try:
        traffic.start()
        wait_until("traffic", lambda: len(seen) >= 5)
        moto.put(BUCKET, "t5/m/1/model.onnx", plus_model(2))  # a new ETag
        wait_until("the new copy answers", lambda: seen and seen[-1] == 2.0)
        # A changed config.pbtxt is a change too (the same model, reloaded).
        ready_logs = server.text().count("version 1 is READY")
        moto.put(BUCKET, "t5/m/config.pbtxt",
                 b'name: "m"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'
                 b'parameters { key: "note" value { string_value: "v2" } }\n')
        wait_for_log(server, "version 1 is READY", count=ready_logs + 1)
        count = len(seen)
        wait_until("traffic after the swaps", lambda: len(seen) >= count + 5)
    finally:
        traffic.stop()
        assert server.stop() == 0, server.text()[-3000:]
    traffic.assert_swapped(1.0, 2.0)


def test_an_explicit_load_finds_a_changed_object(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    put_plus(moto, "t6", "m", 1)
    server = serve([f"s3://{BUCKET}/t6"], proxy.endpoint, key, tmp_path / "cache",
                   "--model-control-mode", "explicit")
    try:
        assert load(server, "m").status_code == 200
        assert infer_plus(server.url, "m") == 1.0
        fetches = server.text().count("fetching 2 files")
        assert load(server, "m").status_code == 200  # unchanged: nothing fetched
        assert server.text().count("fetching 2 files") == fetches
        moto.put(BUCKET, "t6/m/1/model.onnx", plus_model(3))
        assert load(server, "m").status_code == 200
        assert infer_plus(server.url, "m") == 3.0
        assert server.text().count("fetching 2 files") == fetches + 1
    finally:
        assert server.stop() == 0, server.text()[-3000:]


# ------------------------------------------------------------------ failures
def test_an_unreachable_store_is_reported_and_local_models_serve(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    local = tmp_path / "local"
    (local / "plus_two" / "1").mkdir(parents=True)
    (local / "plus_two" / "1" / "model.onnx").write_bytes(plus_model(2))
    port = closed_port()
    server = serve([local, f"s3://{BUCKET}/t7a"], f"http://127.0.0.1:{port}", key,
                   tmp_path / "cache", "--model-control-mode", "explicit",
                   "--load-model", "plus_two")
    try:
        assert infer_plus(server.url, "plus_two") == 2.0
        text = server.text()
        assert f"model repository 's3://{BUCKET}/t7a': after 5 tries: listing s3://{BUCKET}/t7a/: " \
            "Couldn't connect to server" in text, text
        r = load(server, "remote_model")
        assert r.status_code == 503, r.text
        assert "'remote_model' is in no model repository that could be read: model repository " \
            f"'s3://{BUCKET}/t7a': after 5 tries: listing s3://{BUCKET}/t7a/remote_model/: " \
            "Couldn't connect to server" in r.json()["error"], r.text
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_a_store_going_away_and_revoked_credentials_never_disturb_serving(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    put_plus(moto, "t7b", "m", 1)
    server = serve([f"s3://{BUCKET}/t7b"], proxy.endpoint, key, tmp_path / "cache",
                   "--model-control-mode", "poll", "--repository-poll-secs", "0.1")
    try:
        assert infer_plus(server.url, "m") == 1.0
        proxy.down()
        wait_for_log(server, f"listing model repository 's3://{BUCKET}/t7b' failed")
        assert infer_plus(server.url, "m") == 1.0
        assert index(server)[("m", "1")]["state"] == "READY"
        proxy.up()
        moto.revoke(key[0])
        wait_for_log(server, "access denied (HTTP 403 InvalidAccessKeyId")
        moto.put(BUCKET, "t7b/m/1/model.onnx", plus_model(2))  # cannot be seen now
        wait_for_log(server, "access denied (HTTP 403", count=3)
        assert infer_plus(server.url, "m") == 1.0
        assert index(server)[("m", "1")]["state"] == "READY"
        assert_no_secret(server, key)
    finally:
        proxy.up()
        assert server.stop() == 0, server.text()[-3000:]


def test_403_and_404_name_the_repository_and_the_others_serve(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET, "no-such-bucket"])  # not OTHER
    put_plus(moto, "t7c", "m", 1)
    put_plus(moto, "t7c", "m2", 2)
    put_plus(moto, "t7c", "m", 9, bucket=OTHER)
    server = serve([f"s3://{BUCKET}/t7c", f"s3://{OTHER}/t7c-x", "s3://no-such-bucket/p"],
                   proxy.endpoint, key, tmp_path / "cache", "--model-control-mode", "explicit",
                   "--load-model", "m")
    try:
        assert infer_plus(server.url, "m") == 1.0
        text = server.text()
        assert f"s3://{OTHER}/t7c-x/: access denied (HTTP 403 AccessDenied" in text, text[-3000:]
        assert "s3://no-such-bucket/p/: not found (HTTP 404 NoSuchBucket" in text, text[-3000:]
        # An object that goes between the listing and the download.
        proxy.status(f"/{BUCKET}/t7c/m2/1/model.onnx", 404)
        r = load(server, "m2")
        assert r.status_code != 200
        reason = index(server)[("m2", "1")]["reason"]
        assert f"s3://{BUCKET}/t7c/m2/1/model.onnx: not found (HTTP 404 NoSuchKey" in reason
        assert load(server, "m2").status_code == 200  # the fault is spent: it loads
        assert infer_plus(server.url, "m2") == 2.0
        assert_no_secret(server, key)
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_a_cut_connection_is_retried_then_reported(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    blob = random_bytes(1 << 20, 7)
    put_plus(moto, "t7d", "m", 1, extra={"weights.bin": blob})
    put_plus(moto, "t7d", "m2", 2, extra={"weights.bin": blob})
    cache = tmp_path / "cache"
    server = serve([f"s3://{BUCKET}/t7d"], proxy.endpoint, key, cache,
                   "--model-control-mode", "explicit")
    try:
        proxy.cut(f"/{BUCKET}/t7d/m/1/weights.bin", 100_000, times=2)
        assert load(server, "m").status_code == 200, server.text()[-3000:]
        assert proxy.requests(f"/{BUCKET}/t7d/m/1/weights.bin") == 3
        assert infer_plus(server.url, "m") == 1.0
        proxy.cut(f"/{BUCKET}/t7d/m2/1/weights.bin", 100_000, times=100, rst=True)
        assert load(server, "m2").status_code != 200
        reason = index(server)[("m2", "1")]["reason"]
        assert f"s3://{BUCKET}/t7d/m2/1/weights.bin" in reason and "after 5 tries" in reason, reason
        assert infer_plus(server.url, "m") == 1.0
        assert not any((cache / ".staging").iterdir())  # nothing half-fetched is kept
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_a_corrupt_object_is_fetched_again_then_refused(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    put_plus(moto, "t7e", "m", 1)
    put_plus(moto, "t7e", "m2", 2)
    server = serve([f"s3://{BUCKET}/t7e"], proxy.endpoint, key, tmp_path / "cache",
                   "--model-control-mode", "explicit")
    try:
        proxy.corrupt(f"/{BUCKET}/t7e/m/1/model.onnx")
        assert load(server, "m").status_code == 200, server.text()[-3000:]
        assert infer_plus(server.url, "m") == 1.0
        proxy.corrupt(f"/{BUCKET}/t7e/m2/1/model.onnx", times=100)
        assert load(server, "m2").status_code != 200
        reason = index(server)[("m2", "1")]["reason"]
        assert "arrived corrupt: its MD5 is" in reason and "after 5 tries" in reason, reason
        assert infer_plus(server.url, "m") == 1.0
        # A large object (ranged parts) is checked against the CRC32 the store
        # keeps: one corrupt part makes the whole object come again.
        put_plus(moto, "t7e", "m3", 3)
        big = moto.upload_large(BUCKET, "t7e/m3/1/weights.bin", 9 << 20, single_part=True)
        proxy.corrupt(f"/{BUCKET}/t7e/m3/1/weights.bin", method="GET")
        assert load(server, "m3").status_code == 200, server.text()[-3000:]
        assert "weights.bin arrived corrupt: its CRC32 is" in server.text(), server.text()[-3000:]
        assert infer_plus(server.url, "m3") == 3.0
        [copy] = (tmp_path / "cache").glob("*/1/weights.bin")
        assert hashlib.md5(copy.read_bytes()).hexdigest() == big.md5
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_a_full_disk_fails_the_fetch_and_nothing_else(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    put_plus(moto, "t7f", "small", 1)
    put_plus(moto, "t7f", "big", 2, extra={"weights.bin": random_bytes(3 << 20, 8)})
    cache = tmp_path / "cache"
    cache.mkdir()
    with tmpfs(cache, 2 << 20):
        server = serve([f"s3://{BUCKET}/t7f"], proxy.endpoint, key, cache,
                       "--model-control-mode", "explicit", "--load-model", "small")
        try:
            assert infer_plus(server.url, "small") == 1.0
            assert load(server, "big").status_code != 200
            reason = index(server)[("big", "1")]["reason"]
            assert "the disk of the model cache" in reason and "free and the version needs" in reason
            assert infer_plus(server.url, "small") == 1.0
            assert not any((cache / ".staging").iterdir())
        finally:
            assert server.stop() == 0, server.text()[-3000:]


def test_the_cache_cap_evicts_unloaded_versions_first(s3, tmp_path):
    moto, proxy = s3
    key = moto.make_reader([BUCKET])
    for i, name in enumerate(("a", "b", "c")):
        put_plus(moto, "t7g", name, i, extra={"weights.bin": random_bytes(2 << 20, i)})
    server = serve([f"s3://{BUCKET}/t7g"], proxy.endpoint, key, tmp_path / "cache",
                   "--model-control-mode", "explicit", "--model-cache-size", "5MiB")
    try:
        assert load(server, "a").status_code == 200
        assert load(server, "b").status_code == 200
        # Both loaded (pinned): no room for a third.
        assert load(server, "c").status_code != 200
        reason = index(server)[("c", "1")]["reason"]
        assert "the model cache" in reason and "is full" in reason and "--model-cache-size" in reason
        assert unload(server, "a").status_code == 200
        wait_until("a unloaded", lambda: index(server)[("a", "1")]["state"] == "UNAVAILABLE")
        assert load(server, "c").status_code == 200, server.text()[-3000:]
        assert "evicted 'a-1-" in server.text()
        assert infer_plus(server.url, "b") == 1.0 and infer_plus(server.url, "c") == 2.0
    finally:
        assert server.stop() == 0, server.text()[-3000:]


# ------------------------------------------------------------------- tenancy
def test_a_tenant_restricted_to_one_bucket(s3, tmp_path):
    from test_tenancy import bearer, write_tenants
    moto, proxy = s3
    key = moto.make_reader([BUCKET, OTHER])
    put_plus(moto, "t8", "model_a", 1)
    put_plus(moto, "t8", "model_b", 2, bucket=OTHER)
    tenants = write_tenants(tmp_path / "tenants.yaml", [
        {"id": "team-a", "keys": ["team-a-key-0123456789abcdef"],
         "repositories": [f"s3://{BUCKET}/t8"]},
        {"id": "team-b", "keys": ["team-b-key-0123456789abcdef"],
         "repositories": [f"S3://{OTHER}//t8/"]},  # another spelling of the same repository
    ])
    server = serve([f"s3://{BUCKET}/t8", f"s3://{OTHER}/t8"], proxy.endpoint, key,
                   tmp_path / "cache", "--tenants", tenants)
    try:
        def names(k):
            r = requests.post(server.base + "/v2/repository/index", headers=bearer(k), json={})
            assert r.status_code == 200, r.text
            return sorted({m["name"] for m in r.json()})
        assert names("team-a-key-0123456789abcdef") == ["model_a"]
        assert names("team-b-key-0123456789abcdef") == ["model_b"]
        r = requests.post(server.base + "/v2/models/model_b/infer",
                          headers=bearer("team-a-key-0123456789abcdef"),
                          json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                            "data": [0, 0, 0, 0]}]})
        assert r.status_code == 404, r.text
        r = requests.post(server.base + "/v2/models/model_a/infer",
                          headers=bearer("team-a-key-0123456789abcdef"),
                          json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                            "data": [0, 0, 0, 0]}]})
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1.0] * 4, r.text
        assert_no_secret(server, key)
    finally:
        assert server.stop() == 0, server.text()[-3000:]
