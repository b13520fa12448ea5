"""MLflow: the MLflow model format in a repository folder (no config.pbtxt),
and the MLflow Model Registry as `--model-repository mlflow://HOST:PORT`,
against a real `mlflow server` (SQLite backend store, artifacts served by
the tracking server) where the tests register models with the mlflow
client library. Artifacts kept in S3 are fetched straight from there (moto).
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from conftest import Server, wait_for_log
from s3_server import MotoServer
from test_s3_repository import PlusTraffic, aws_env, infer_plus, plus_model, wait_until

mlflow = pytest.importorskip("mlflow")
import mlflow.onnx  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import mlflow.sklearn  # noqa: E402
import onnx  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

VENV = Path(sys.prefix)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` in its own process group: SQLite store, served artifacts
    (or, with artifact_root, artifacts written straight to that URI)."""

    def __init__(self, root, artifact_root=None, env=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [str(VENV / "bin" / "mlflow"), "server", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}"]
        if artifact_root:
            args += ["--default-artifact-root", artifact_root, "--no-serve-artifacts"]
        else:
            args += ["--artifacts-destination", str(self.root / "artifacts")]
        self.log = open(self.root / "mlflow.log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, **(env or {})})
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # its whole process group, workers included
            raise

    def _wait_ready(self):
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError((self.root / "mlflow.log").read_text())
            try:
                if requests.get(self.url + "/health", timeout=10).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or still starting
                pass
            time.sleep(0.1)
        raise RuntimeError("mlflow server never answered:\n" + (self.root / "mlflow.log").read_text())

    def stop(self):
        """Stops the server and every process of its group (uvicorn, job runners)."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers that outlived the main process
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


def onnx_plus(c):
    return onnx.load_from_string(plus_model(c))


def iris_frame():
    return pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.3, 0.9]})


class TextLength(mlflow.pyfunc.PythonModel):
    """A custom pyfunc over a column-based signature with a string column."""

    def predict(self, context, model_input, params=None):
        return (model_input["text"].str.len() * model_input["times"]).astype("int64")


def infer_json(server, name, inputs):
    r = requests.post(f"{server.base}/v2/models/{name}/infer", json={"inputs": inputs}, timeout=120)
    assert r.status_code == 200, r.text
    return {o["name"]: o["data"] for o in r.json()["outputs"]}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.url)
    try:
        yield server
    finally:
        mlflow.set_tracking_uri(previous)
        server.stop()


# ------------------------------------------------------------- the format
def test_mlflow_folders_serve_without_a_config(tmp_path):
    repo = tmp_path / "repo"
    mlflow.onnx.save_model(onnx_plus(7), repo / "plus" / "1")
    frame = iris_frame()
    model = LogisticRegression().fit(frame, [0, 1, 0, 1])
    mlflow.sklearn.save_model(model, repo / "iris" / "1",
                              signature=infer_signature(frame, model.predict(frame)))
    texts = pd.DataFrame({"text": ["a", "abc"], "times": [2, 3]})
    # By value: the worker cannot import this test module.
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    mlflow.pyfunc.save_model(repo / "length" / "1", python_model=TextLength(),
                             signature=infer_signature(texts, pd.Series([2, 9])))
    server = Server([repo], "--python-env", VENV).start()
    try:
        assert infer_plus(server.url, "plus") == 7.0
        meta = requests.get(f"{server.base}/v2/models/iris", timeout=30).json()
        assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == \
            [("a", "FP64", [-1]), ("b", "FP64", [-1])], meta
        out = infer_json(server, "iris", [
            {"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0, 4.0]},
            {"name": "b", "shape": [2], "datatype": "FP64", "data": [0.5, 0.9]}])
        assert out["output-0"] == model.predict(pd.DataFrame({"a": [1.0, 4.0],
                                                              "b": [0.5, 0.9]})).tolist()
        # A string column is BYTES on the wire.
        meta = requests.get(f"{server.base}/v2/models/length", timeout=30).json()
        assert "inputs" in meta, (meta, server.text()[-3000:])
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == \
            [("text", "BYTES"), ("times", "INT64")], meta
        client = httpclient.InferenceServerClient(server.url)
        text = httpclient.InferInput("text", [3], "BYTES")
        text.set_data_from_numpy(np.array([b"hello", b"", "héllo".encode()], dtype=object))
        times = httpclient.InferInput("times", [3], "INT64")
        times.set_data_from_numpy(np.array([1, 5, 2], dtype=np.int64))
        result = client.infer("length", [text, times]).as_numpy("output-0")
        assert result.tolist() == [5, 0, 10]
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_an_mlmodel_without_a_signature_is_a_clear_reason(tmp_path):
    repo = tmp_path / "repo"
    frame = iris_frame()
    mlflow.sklearn.save_model(LogisticRegression().fit(frame, [0, 1, 0, 1]), repo / "bare" / "1")
    (repo / "plus" / "1").mkdir(parents=True)
    (repo / "plus" / "1" / "model.onnx").write_bytes(plus_model(1))
    server = Server([repo], "--python-env", VENV).start()
    try:
        index = {m["name"]: m for m in
                 requests.post(f"{server.base}/v2/repository/index", timeout=30).json()}
        assert index["bare"]["state"] == "UNAVAILABLE"
        assert "MLmodel of model 'bare' version 1: MLmodel has no signature" in \
            index["bare"]["reason"], index["bare"]
        assert infer_plus(server.url, "plus") == 1.0
    finally:
        assert server.stop() == 0, server.text()[-3000:]


# ------------------------------------------------------------ the registry
def register_onnx(name, c):
    return mlflow.onnx.log_model(onnx_plus(c), name="model", registered_model_name=name)


def test_the_registry_serves_the_alias_and_follows_it_under_traffic(registry, tmp_path):
    client = mlflow.MlflowClient()
    with mlflow.start_run():
        register_onnx("plus", 1)
    with mlflow.start_run():
        register_onnx("plus", 2)
    frame = iris_frame()
    model = LogisticRegression().fit(frame, [0, 1, 0, 1])
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name="iris",
                                 signature=infer_signature(frame, model.predict(frame)))
    client.set_registered_model_alias("plus", "champion", "1")
    client.set_registered_model_alias("iris", "champion", "1")
    with mlflow.start_run():
        register_onnx("no_alias", 3)
    server = Server(["mlflow://" + registry.url.removeprefix("http://")],
                    "--mlflow-alias", "champion", "--model-cache-dir", tmp_path / "cache",
                    "--model-control-mode", "poll", "--repository-poll-secs", "0.2",
                    "--python-env", VENV).start()
    traffic = PlusTraffic(server.url, "plus")
    seen = traffic.seen
    try:
        assert infer_plus(server.url, "plus") == 1.0
        out = infer_json(server, "iris", [
            {"name": "a", "shape": [1], "datatype": "FP64", "data": [4.0]},
            {"name": "b", "shape": [1], "datatype": "FP64", "data": [0.9]}])
        assert out["output-0"] == model.predict(pd.DataFrame({"a": [4.0], "b": [0.9]})).tolist()
        index = {(m["name"], m.get("version")): m for m in
                 requests.post(f"{server.base}/v2/repository/index", timeout=30).json()}
        assert "has no alias 'champion' (--mlflow-alias)" in str(index), index
        traffic.start()
        wait_until("traffic", lambda: len(seen) >= 5)
        client.set_registered_model_alias("plus", "champion", "2")
        wait_until("version 2 answers", lambda: seen and seen[-1] == 2.0)
        count = len(seen)
        wait_until("traffic after the swap", lambda: len(seen) >= count + 5)
        wait_until("version 1 leaves", lambda: all(
            m.get("version") != "1" or m["state"] != "READY"
            for m in requests.post(f"{server.base}/v2/repository/index", timeout=30).json()
            if m["name"] == "plus"))
    finally:
        traffic.stop()
        assert server.stop() == 0, server.text()[-3000:]
    traffic.assert_swapped(1.0, 2.0)


def test_without_an_alias_the_newest_version_serves_and_restarts_use_the_cache(registry,
                                                                               tmp_path):
    with mlflow.start_run():
        register_onnx("newest", 4)
    with mlflow.start_run():
        register_onnx("newest", 5)
    cache = tmp_path / "cache"
    for run in range(2):
        server = Server(["mlflow://" + registry.url.removeprefix("http://")],
                        "--model-cache-dir", cache, "--model-control-mode", "explicit",
                        "--load-model", "newest")
        server.start()
        try:
            assert infer_plus(server.url, "newest") == 5.0
            if run == 1:
                assert "using the cached copy" in server.text(), server.text()[-3000:]
        finally:
            assert server.stop() == 0, server.text()[-3000:]


def test_an_unreachable_registry_is_reported_and_the_others_serve(tmp_path):
    local = tmp_path / "local"
    (local / "plus" / "1").mkdir(parents=True)
    (local / "plus" / "1" / "model.onnx").write_bytes(plus_model(2))
    port = free_port()
    server = Server([local, f"mlflow://127.0.0.1:{port}"], "--model-cache-dir",
                    tmp_path / "cache").start()
    try:
        assert infer_plus(server.url, "plus") == 2.0
        assert f"model repository 'mlflow://127.0.0.1:{port}': after 5 tries: MLflow " \
            "/api/2.0/mlflow/registered-models/search: Couldn't connect to server" in \
            server.text(), server.text()[-3000:]
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_artifacts_in_s3_are_fetched_straight_from_s3(tmp_path):
    with MotoServer(tmp_path / "moto") as moto:
        moto.create_bucket("mlflow-artifacts")
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": moto.endpoint}
        store = MlflowServer(tmp_path / "mlflow", artifact_root="s3://mlflow-artifacts/runs",
                             env=env)
        saved = {k: os.environ.get(k) for k in env}
        previous = mlflow.get_tracking_uri()
        try:
            os.environ.update(env)
            mlflow.set_tracking_uri(store.url)
            with mlflow.start_run():
                register_onnx("in_s3", 6)
            server = Server(["mlflow://" + store.url.removeprefix("http://")],
                            "--s3-endpoint", moto.endpoint, "--model-cache-dir", tmp_path / "cache",
                            env=aws_env(("testing", "testing")))
            server.start()
            try:
                assert infer_plus(server.url, "in_s3") == 6.0
                assert "(s3://mlflow-artifacts/runs/" in server.text(), server.text()[-3000:]
            finally:
                assert server.stop() == 0, server.text()[-3000:]
        finally:
            mlflow.set_tracking_uri(previous)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            store.stop()
