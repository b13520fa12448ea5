"""--model-name: a --model-repository folder that holds one model is served
under that name. This is KServe's single-model mode: the storage initializer
leaves an InferenceService's storageUri at /mnt/models, and the runtime
passes --model-name={{.Name}} (deploy/kserve, docs/kserve.md).

The folder may be a model folder (a config.pbtxt and version folders), or the
model's own files, which become version 1: a bare model.onnx, or an MLflow
model (MLmodel). A folder of model folders is served as before, flag or not.
"""
import re
import shutil
from pathlib import Path

import pytest
import requests

from conftest import EXAMPLES, ROOT, Server, wait_for_log
from test_s3_repository import infer_plus, plus_model


def index(server):
    r = requests.post(server.base + "/v2/repository/index", timeout=30)
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def links_dir(server):
    m = re.search(r"served as '[^']+' \([^;]+; through (\S+)\)", server.text())
    assert m, server.text()[-3000:]
    return Path(m.group(1)).parent


def test_a_bare_model_file_is_served_as_the_named_model(tmp_path):
    (tmp_path / "model.onnx").write_bytes(plus_model(3))
    server = Server([tmp_path], "--model-name", "my-model").start()
    try:
        assert infer_plus(server.url, "my-model") == 3.0
        models = index(server)
        assert list(models) == ["my-model"] and models["my-model"]["version"] == "1"
        links = links_dir(server)
        assert links.is_dir()
    finally:
        assert server.stop() == 0, server.text()[-3000:]
    # The folder of links goes with the server; the model's folder stays.
    assert not links.exists()
    assert (tmp_path / "model.onnx").exists()


def test_a_model_folder_is_served_under_the_name_and_its_config_must_agree(tmp_path):
    folder = tmp_path / "storage"
    shutil.copytree(EXAMPLES / "add_sub", folder)
    # The example's config names 'add_sub': not the InferenceService's name.
    server = Server([folder], "--model-name", "adder").start()
    try:
        reason = index(server)["adder"]["reason"]
        assert "sets name 'add_sub'; expected the model directory name 'adder'" in reason, reason
    finally:
        assert server.stop() == 0, server.text()[-3000:]
    text = (folder / "config.pbtxt").read_text().replace('name: "add_sub"', "")
    (folder / "config.pbtxt").write_text(text)
    (folder / "2").mkdir()
    shutil.copy(folder / "1" / "model.onnx", folder / "2" / "model.onnx")
    server = Server([folder], "--model-name", "adder").start()
    try:
        r = requests.post(server.base + "/v2/models/adder/infer", timeout=30, json={"inputs": [
            {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]})
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == "2"  # its version folders, its version policy
        assert r.json()["outputs"][0]["data"] == [2, 3, 4, 5]
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_an_mlflow_model_folder_is_served_as_the_named_model(tmp_path):
    mlflow_onnx = pytest.importorskip("mlflow.onnx")
    onnx = pytest.importorskip("onnx")
    mlflow_onnx.save_model(onnx.load_from_string(plus_model(5)), tmp_path / "mnt-models")
    server = Server([tmp_path / "mnt-models"], "--model-name", "sklearn-iris").start()
    try:
        assert infer_plus(server.url, "sklearn-iris") == 5.0
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_a_repository_of_model_folders_is_unchanged_by_the_flag(tmp_path):
    for name, c in (("a", 1), ("b", 2)):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "model.onnx").write_bytes(plus_model(c))
    flat = tmp_path.parent / (tmp_path.name + "-flat")
    flat.mkdir()
    (flat / "model.onnx").write_bytes(plus_model(9))
    # Both kinds at once: the flat folder is 'single', the repository as ever.
    server = Server([tmp_path, flat], "--model-name", "single").start()
    try:
        assert sorted(index(server)) == ["a", "b", "single"]
        assert infer_plus(server.url, "a") == 1.0 and infer_plus(server.url, "b") == 2.0
        assert infer_plus(server.url, "single") == 9.0
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_a_name_no_folder_could_have_is_refused_at_start(tmp_path):
    (tmp_path / "model.onnx").write_bytes(plus_model(1))
    server = Server([tmp_path], "--model-name", "../escape")
    with pytest.raises(RuntimeError) as failed:
        server.start()
    assert "model name '../escape' cannot name a model folder" in str(failed.value)


def kserve_runtime_args(name):
    """deploy/kserve/cluster-serving-runtime.yaml's own arguments, {{.Name}}
    filled in as KServe does, less those the test sets (ports, addresses)."""
    import yaml
    from test_kserve_agent import NOT_TAKEN
    rt = yaml.safe_load((ROOT / "deploy" / "kserve" / "cluster-serving-runtime.yaml").read_text())
    (container,) = rt["spec"]["containers"]
    args, i = [], 0
    raw = [a.replace("{{.Name}}", name) for a in container["args"]]
    while i < len(raw):
        takes_value = "=" not in raw[i] and i + 1 < len(raw) and not raw[i + 1].startswith("--")
        if raw[i].split("=", 1)[0] not in NOT_TAKEN:
            args += raw[i:i + 2] if takes_value else [raw[i]]
        i += 2 if takes_value else 1
    return args


def test_the_kserve_runtime_serves_a_bare_model_as_the_inference_service(tmp_path):
    """On /mnt/models as the storage initializer leaves a storageUri naming a
    model.onnx."""
    args = kserve_runtime_args("add-sub-onnx")
    assert args[args.index("--model-name") + 1] == "add-sub-onnx"
    mnt = tmp_path / "mnt-models"
    mnt.mkdir()
    (mnt / "model.onnx").write_bytes(plus_model(4))
    server = Server([mnt], *args).start()
    try:
        assert infer_plus(server.url, "add-sub-onnx") == 4.0
    finally:
        assert server.stop() == 0, server.text()[-3000:]


def test_the_kserve_runtime_is_not_ready_when_the_model_fails_to_load(tmp_path):
    """A bare model.pt (TorchScript needs its config): UNAVAILABLE with the
    reason, and the pod never Ready (--strict-readiness)."""
    mnt = tmp_path / "mnt-models"
    mnt.mkdir()
    shutil.copy(EXAMPLES / "image_cnn_torch" / "1" / "model.pt", mnt / "model.pt")
    server = Server([mnt], *kserve_runtime_args("cnn"))
    server.start(wait_ready=False)
    try:
        wait_for_log(server, "not ready (--strict-readiness)")
        assert requests.get(server.base + "/v2/health/ready", timeout=10).status_code == 400
        reason = index(server)["cnn"]["reason"]
        assert "its config must list every input and output" in reason, reason
    finally:
        assert server.stop() == 0, server.text()[-3000:]
