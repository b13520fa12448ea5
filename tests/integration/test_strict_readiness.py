"""--strict-readiness: /v2/health/ready only when every model loaded at start
did load (Triton's --strict-readiness), so that a pod whose model failed (a
KServe storageUri in a layout nobody serves, a broken model) is never Ready.
Without it, the server is ready once start-up loading has finished, whatever
failed. Either way the server stays live and serves what loaded."""
import shutil

import requests

from conftest import EXAMPLES, Server, wait_for_log


def repo_with_a_broken_model(tmp_path):
    shutil.copytree(EXAMPLES / "add_sub", tmp_path / "add_sub")
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"not an onnx model")
    return tmp_path


def infer_add_sub(server):
    r = requests.post(server.base + "/v2/models/add_sub/infer", timeout=30, json={"inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]})
    return r.status_code


def test_a_failed_start_up_load_keeps_a_strict_server_unready(tmp_path):
    s = Server([repo_with_a_broken_model(tmp_path)], "--strict-readiness=true")
    s.start(wait_ready=False)
    try:
        wait_for_log(s, "not ready (--strict-readiness)")
        assert "start-up loading: 'broken' failed to load" in s.text()
        assert requests.get(s.base + "/v2/health/ready", timeout=10).status_code == 400  # KServe v2: 4xx is false
        assert requests.get(s.base + "/v2/health/live", timeout=10).status_code == 200
        assert infer_add_sub(s) == 200  # what loaded serves
        assert "mmserve is ready" not in s.text()
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_without_it_the_failure_is_a_warning_and_the_server_is_ready(tmp_path):
    s = Server([repo_with_a_broken_model(tmp_path)]).start()  # waits for ready
    try:
        assert "start-up loading: 'broken' failed to load" in s.text()
        assert infer_add_sub(s) == 200
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_a_strict_server_whose_models_all_load_is_ready(tmp_path):
    shutil.copytree(EXAMPLES / "add_sub", tmp_path / "add_sub")
    s = Server([tmp_path], "--strict-readiness=true").start()
    try:
        assert infer_add_sub(s) == 200
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_a_load_model_name_no_repository_holds_counts_as_a_failure(tmp_path):
    shutil.copytree(EXAMPLES / "add_sub", tmp_path / "add_sub")
    s = Server([tmp_path], "--model-control-mode", "explicit", "--load-model", "add_sub",
               "--load-model", "missing", "--strict-readiness=true")
    s.start(wait_ready=False)
    try:
        wait_for_log(s, "not ready (--strict-readiness)")
        assert "--load-model names no model in the repositories: 'missing'" in s.text()
        assert requests.get(s.base + "/v2/health/ready", timeout=10).status_code == 400  # KServe v2: 4xx is false
    finally:
        assert s.stop() == 0, s.text()[-3000:]
