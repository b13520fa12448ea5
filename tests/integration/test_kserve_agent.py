"""KServe's multi-model mode (TrainedModels) against mmserve: what KServe's
model agent does, replayed call by call against a real server.

The agent is the sidecar KServe injects into an InferenceService without a
storageUri (the "puller"). Everything below is read from KServe v0.20.0
(github.com/kserve/kserve, tag v0.20.0, commit 1fb781055dd1567164358233e1125142ca6ef1fe):

- pkg/agent/watcher.go: a TrainedModel added is one Add op; one removed is a
  Remove op; one whose spec changed is a Remove, then an Add.
- pkg/agent/puller.go, Add: Downloader.DownloadModel (below), then
    http.Post("http://localhost:8080/v2/repository/models/<name>/load",
              "application/json", bytes.NewBufferString("{}"))
  Status 200 is success ("Successfully loaded model"); any other status is
  logged with the body ("Failed to load model %s with status [%d] and
  resp:%s") and nothing else happens: no retry, no status on the
  TrainedModel. A download that fails sends no load at all.
- pkg/agent/puller.go, Remove: storage.RemoveDir(<model dir>/<name>) first
  (if that fails, no unload is sent), then the same POST to .../unload, 200
  being success.
- pkg/agent/downloader.go: the model's files go into <model dir>/<name>/, then
  a SUCCESS.<sha256 of the spec> file holding the TrainedModel's spec as JSON
  goes beside them (a second Add with the same spec finds it and skips the
  download, but still sends the load).
- pkg/agent/storage/s3.go (gcs.go alike): each object under the
  storageUri's prefix is written to filepath.Join(<model dir>, <name>,
  key minus prefix); storage.Create makes folders 0777 and the agent runs with
  umask 0 (puller.go), so files are 0666.
- cmd/agent/main.go: the model dir is --model-dir, /mnt/models, shared with
  the server container (pkg/webhook/admission/pod/agent_injector.go).

Go's http.Post sends exactly the request `agent_post` writes: Host,
User-Agent: Go-http-client/1.1, Content-Length: 2, Content-Type:
application/json, Accept-Encoding: gzip, body {}.

mmserve runs with the arguments of deploy/kserve/serving-runtime-multimodel.yaml
(but for ports, addresses and the Python environment).
"""
import hashlib
import http.client
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import yaml

from conftest import EXAMPLES, ROOT, Server

RUNTIME = ROOT / "deploy" / "kserve" / "serving-runtime-multimodel.yaml"
# Set by the test here (ports 0, loopback) or not a server setting.
NOT_TAKEN = {"--model-repository", "--http-address", "--http-port", "--grpc-address", "--grpc-port",
             "--metrics-address", "--metrics-port", "--python-env"}


def runtime_args():
    """The multi-model runtime's own arguments, less those NOT_TAKEN."""
    rt = yaml.safe_load(RUNTIME.read_text())
    (container,) = rt["spec"]["containers"]
    args, out, i = container["args"], [], 0
    while i < len(args):
        flag = args[i].split("=", 1)[0]
        takes_value = "=" not in args[i] and i + 1 < len(args) and not args[i + 1].startswith("--")
        if flag not in NOT_TAKEN:
            out += args[i:i + 2] if takes_value else [args[i]]
        i += 2 if takes_value else 1
    assert "--model-control-mode" in out and "explicit" in out, out
    return out


# -------------------------------------------------------------- the agent
def bucket_from(folder, prefix):
    """An object store's view of a local model folder: {key: bytes}."""
    folder = Path(folder)
    return {f"{prefix}/{p.relative_to(folder).as_posix()}": p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def go_join(*parts):
    """Go's filepath.Join: joins with '/' and cleans (a part's leading '/' is kept inside)."""
    return os.path.normpath("/".join(p for p in parts if p))


def agent_download(model_dir, name, storage_uri, bucket, spec):
    """downloader.go DownloadModel with s3.go's layout: each object under the
    storageUri's prefix to <model dir>/<name>/<key minus prefix>, then the
    SUCCESS.<sha256> file with the spec. Returns False where the agent finds
    the SUCCESS file and downloads nothing."""
    success = Path(model_dir) / name / ("SUCCESS." + hashlib.sha256(repr(spec).encode()).hexdigest())
    if success.exists():
        return False
    prefix = storage_uri.split("://", 1)[1].split("/", 1)[1]
    objects = {k: v for k, v in bucket.items() if k.startswith(prefix) and not k.endswith("/")}
    assert objects, f"{storage_uri} has no objects or does not exist"  # s3.go: the Add ends there, no load
    for key, data in objects.items():
        path = Path(go_join(str(model_dir), name, key[len(prefix):]))
        for d in reversed([p for p in path.parents if not p.exists()]):
            d.mkdir()
            d.chmod(0o777)  # storage.Create: os.MkdirAll(dir, os.ModePerm) under umask 0
        path.write_bytes(data)
        path.chmod(0o666)  # os.Create under umask 0
    success.write_text(json.dumps(spec))
    success.chmod(0o644)  # os.WriteFile(successFile, json, 0o644)
    return True


def agent_remove_dir(model_dir, name):
    """storage.RemoveDir: every entry of <model dir>/<name>, then the folder."""
    d = Path(model_dir) / name
    for entry in d.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    d.rmdir()


def agent_post(server, name, action):
    """puller.go's http.Post to localhost:8080/v2/repository/models/<name>/<action>,
    byte for byte as Go's client sends it. Returns (status, body)."""
    conn = http.client.HTTPConnection("localhost", server.port, timeout=120)
    conn.putrequest("POST", f"/v2/repository/models/{name}/{action}", skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", f"localhost:{server.port}")
    conn.putheader("User-Agent", "Go-http-client/1.1")
    conn.putheader("Content-Length", "2")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Accept-Encoding", "gzip")
    conn.endheaders(b"{}")
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    return resp.status, body


def agent_add(server, model_dir, name, spec, bucket):
    """An Add op (puller.go): download, then load. Returns what the agent
    logs: ('loaded', 200, body) or ('load failed', status, body)."""
    agent_download(model_dir, name, spec["storageUri"], bucket, spec)
    status, body = agent_post(server, name, "load")
    return ("loaded" if status == 200 else "load failed", status, body)


def agent_remove(server, model_dir, name):
    """A Remove op (puller.go): the folder goes first, then the unload."""
    agent_remove_dir(model_dir, name)
    status, body = agent_post(server, name, "unload")
    return ("unloaded" if status == 200 else "unload failed", status, body)


# ------------------------------------------------------------ the models
def triton_folder(tmp_path, example, tm_name):
    """An example model folder as a TrainedModel's storageUri holds it: its
    config.pbtxt names no model (the TrainedModel's name is the model's)."""
    src = tmp_path / "store" / tm_name
    shutil.copytree(EXAMPLES / example, src)
    cfg = src / "config.pbtxt"
    cfg.write_text("\n".join(line for line in cfg.read_text().splitlines()
                             if not line.startswith("name:")) + "\n")
    return src


def spec_of(storage_uri, framework):
    return {"storageUri": storage_uri, "framework": framework, "memory": "64Mi"}


def ready(server, name):
    return requests.get(f"{server.base}/v2/models/{name}/ready", timeout=30).status_code == 200


def add_sub_http(server, name):
    client = httpclient.InferenceServerClient(server.url)
    a = np.array([1, 2, 3, 4], dtype=np.float32)
    b = np.array([10, 20, 30, 40], dtype=np.float32)
    inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = client.infer(name, inputs)
    client.close()
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


def credit_risk_grpc(server, name):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    x = np.array([[55, 0.3, 41, 120, 0, 20, 8, 4], [18, 0.9, 22, 6, 5, 40, 0, 9]], dtype=np.float32)
    inp = grpcclient.InferInput("input__0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    out = client.infer(name, [inp]).as_numpy("output__0")
    client.close()
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)  # [P(repaid), P(default)]


@pytest.fixture()
def mms(tmp_path):
    """mmserve as the multi-model runtime starts it: an empty /mnt/models."""
    model_dir = tmp_path / "mnt-models"
    model_dir.mkdir()
    server = Server([model_dir], *runtime_args(), "--python-env", sys.prefix)
    server.start()
    yield server, model_dir
    code = server.stop()
    assert code == 0, f"mmserve exited with {code}:\n{server.text()[-4000:]}"


def test_trained_models_through_the_agents_calls(mms, tmp_path):
    server, model_dir = mms
    # Empty at start: ready (the pod's readiness), no model.
    assert requests.get(server.base + "/v2/health/ready", timeout=10).status_code == 200
    assert requests.post(server.base + "/v2/repository/index", timeout=10).json() == []

    # TrainedModel add-sub (framework onnx).
    store = triton_folder(tmp_path, "add_sub", "add_sub")
    bucket = bucket_from(store, "kserve/trained/add_sub")
    spec1 = spec_of("s3://models/kserve/trained/add_sub", "onnx")
    assert agent_add(server, model_dir, "add-sub", spec1, bucket)[:2] == ("loaded", 200)
    files = {p.name for p in (model_dir / "add-sub").iterdir()}
    success = {f for f in files if f.startswith("SUCCESS.")}
    assert files - success == {"1", "config.pbtxt"} and len(success) == 1, files
    assert ready(server, "add-sub")
    add_sub_http(server, "add-sub")

    # TrainedModel credit-risk (framework xgboost, the fil backend), its
    # storageUri with a trailing '/'.
    store2 = triton_folder(tmp_path, "credit_risk_xgboost", "credit_risk_xgboost")
    bucket2 = bucket_from(store2, "kserve/trained/credit_risk_xgboost")
    spec2 = spec_of("s3://models/kserve/trained/credit_risk_xgboost/", "xgboost")
    assert agent_add(server, model_dir, "credit-risk", spec2, bucket2)[:2] == ("loaded", 200)
    credit_risk_grpc(server, "credit-risk")
    add_sub_http(server, "add-sub")  # the first one still serves

    # An Add for a model whose SUCCESS file is there (downloader.go: the same
    # spec again): no download, but the load is sent again: 200, still serving.
    assert not agent_download(model_dir, "add-sub", spec1["storageUri"], bucket, spec1)
    assert agent_post(server, "add-sub", "load")[0] == 200
    add_sub_http(server, "add-sub")

    # A changed spec (a new storageUri): Remove, then Add.
    spec1b = spec_of("s3://models/kserve/trained/add_sub_v2", "onnx")
    bucket1b = bucket_from(store, "kserve/trained/add_sub_v2")
    assert agent_remove(server, model_dir, "add-sub")[:2] == ("unloaded", 200)
    assert not ready(server, "add-sub")
    assert agent_add(server, model_dir, "add-sub", spec1b, bucket1b)[:2] == ("loaded", 200)
    add_sub_http(server, "add-sub")

    # TrainedModel deleted: its folder goes, then the unload; the model is gone.
    assert agent_remove(server, model_dir, "add-sub")[:2] == ("unloaded", 200)
    assert not (model_dir / "add-sub").exists()
    assert not ready(server, "add-sub")
    r = requests.post(f"{server.base}/v2/models/add-sub/infer", json={"inputs": []}, timeout=10)
    assert r.status_code in (400, 404, 503) and "add-sub" in r.json()["error"], r.text
    names = {m["name"] for m in requests.post(server.base + "/v2/repository/index", timeout=10).json()}
    assert names == {"credit-risk"}
    credit_risk_grpc(server, "credit-risk")

    # An unload the server has no model for (the agent removing a model whose
    # load had failed, or twice): not 200; the agent only logs it.
    status, body = agent_post(server, "never-loaded", "unload")
    assert status == 404 and "never-loaded" in body

    assert agent_remove(server, model_dir, "credit-risk")[:2] == ("unloaded", 200)
    assert requests.post(server.base + "/v2/repository/index", timeout=10).json() == []


def test_a_broken_trained_model(mms, tmp_path):
    """What the agent sees for models that cannot load: an error status and
    the reason in the body, which it logs; the server keeps serving the rest
    and reports the model not ready."""
    server, model_dir = mms
    good = triton_folder(tmp_path, "add_sub", "add_sub")
    assert agent_add(server, model_dir, "good", spec_of("s3://m/good", "onnx"),
                     bucket_from(good, "good"))[:2] == ("loaded", 200)

    # Not an ONNX file.
    broken = tmp_path / "store" / "broken"
    shutil.copytree(good, broken)
    (broken / "1" / "model.onnx").write_bytes(b"this is not an onnx model")
    outcome, status, body = agent_add(server, model_dir, "broken", spec_of("s3://m/broken", "onnx"),
                                      bucket_from(broken, "broken"))
    assert (outcome, status) == ("load failed", 400), body
    assert "model 'broken'" in json.loads(body)["error"] and "model.onnx" in json.loads(body)["error"]
    assert not ready(server, "broken")
    index = {m["name"]: m for m in requests.post(server.base + "/v2/repository/index", timeout=10).json()}
    assert index["broken"]["state"] == "UNAVAILABLE" and index["broken"]["reason"]

    # A model folder copied as is: its config.pbtxt names the model
    # "add_sub", not the TrainedModel's name (Triton refuses it too).
    outcome, status, body = agent_add(server, model_dir, "renamed", spec_of("s3://m/renamed", "onnx"),
                                      bucket_from(EXAMPLES / "add_sub", "renamed"))
    assert (outcome, status) == ("load failed", 400), body
    assert "add_sub" in json.loads(body)["error"]

    # An s3:// storageUri naming one object: s3.go writes it to <model dir>/<name>
    # itself (the key minus the prefix is empty), so the SUCCESS file cannot
    # be made, the download fails and the agent sends no load at all.
    with pytest.raises(NotADirectoryError):
        agent_download(model_dir, "one-object", "s3://m/one/model.onnx",
                       {"one/model.onnx": b"..."}, spec_of("s3://m/one/model.onnx", "onnx"))
    (model_dir / "one-object").unlink()

    # A single file over https:// (https.go: <model dir>/<name>/<file name>, no
    # version folder): not a model mmserve can serve.
    single = model_dir / "single-file"
    single.mkdir(mode=0o777)
    shutil.copy(good / "1" / "model.onnx", single / "model.onnx")
    status, body = agent_post(server, "single-file", "load")
    assert status == 400, body
    assert "platform" in json.loads(body)["error"]

    add_sub_http(server, "good")
    # The agent removes them like any other: the unload answers 200 (a model
    # that failed to load is still one the repository knew).
    for name in ("broken", "renamed", "single-file"):
        assert agent_remove(server, model_dir, name)[:2] == ("unloaded", 200), name
    add_sub_http(server, "good")


def test_server_restart_reloads_what_the_agent_left(mms, tmp_path):
    """The server container restarts alone (its emptyDir /mnt/models stays);
    the agent does not know and sends no load. --load-model * (the runtime's
    args) loads what is there again."""
    server, model_dir = mms
    store = triton_folder(tmp_path, "add_sub", "add_sub")
    assert agent_add(server, model_dir, "add-sub", spec_of("s3://m/a", "onnx"),
                     bucket_from(store, "a"))[:2] == ("loaded", 200)
    assert server.stop() == 0
    again = Server([model_dir], *runtime_args(), "--python-env", sys.prefix)
    again.start()
    try:
        end = time.monotonic() + 60
        while not ready(again, "add-sub") and time.monotonic() < end:
            time.sleep(0.05)
        add_sub_http(again, "add-sub")
    finally:
        assert again.stop() == 0
