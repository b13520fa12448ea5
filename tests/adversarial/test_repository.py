"""Defect 9 and its class: files in a repository are hostile input.

drift_baseline.json as a FIFO hung the load and every later model operation;
as a symlink to /dev/zero it grew the server to 3 GiB. Every file the server
reads from a repository now goes through one door: regular files only (after
symlinks), a size cap per kind, a clear error for anything else."""
import os
import shutil

import pytest
import requests

from conftest import EXAMPLES, Server
from hostile import copy_model

# name -> (path of the hostile file inside the model folder, what it is, words in the reason)
HOSTILE = {
    "fifo_baseline": ("drift_baseline.json", "fifo", "drift baseline"),
    "zero_baseline": ("drift_baseline.json", "/dev/zero", "drift baseline"),
    "fifo_config": ("config.pbtxt", "fifo", "config"),
    "zero_config": ("config.pbtxt", "/dev/zero", "config"),
    "huge_config": ("config.pbtxt", "huge", "config"),
    "fifo_model": ("1/model.onnx", "fifo", "model file"),
    "zero_model": ("1/model.onnx", "/dev/zero", "model file"),
    "dir_model": ("1/model.onnx", "folder", "model file"),
}
EXPECTED = {"fifo": "is a FIFO; expected a regular file",
            "/dev/zero": "is a character device; expected a regular file",
            "folder": "is a folder; expected a regular file",
            "huge": "bytes; expected at most 4194304 bytes for a config"}


def plant(model_dir, relative, kind):
    path = model_dir / relative
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "/dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "huge":
        with open(path, "wb") as f:
            f.truncate(5 << 20)  # sparse
    return path


@pytest.fixture(scope="module")
def hostile_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("hostile_repo")
    for name, (relative, kind, _) in HOSTILE.items():
        copy_model("add_sub", repo, name)
        plant(repo / name, relative, kind)
    copy_model("add_sub", repo)
    return repo


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def reasons(server):
    r = requests.post(server.base + "/v2/repository/index", json={}, timeout=10)
    assert r.status_code == 200, r.text
    return {m["name"]: (m.get("state"), m.get("reason", "")) for m in r.json()}


def test_special_files_at_startup_are_refused_without_hanging(hostile_repo):
    # Mode none loads everything at start: a hang here would never get ready.
    s = Server([hostile_repo]).start()
    try:
        got = reasons(s)
        for name, (relative, kind, words) in HOSTILE.items():
            state, reason = got[name]
            assert state == "UNAVAILABLE", (name, got[name])
            assert words in reason and relative.split("/")[-1] in reason, (name, reason)
            assert EXPECTED[kind] in reason, (name, reason)
        assert got["add_sub"][0] == "READY"
        r = requests.post(s.base + "/v2/models/add_sub/infer", timeout=10, json={"inputs": [
            {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]})
        assert r.status_code == 200, r.text
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_special_files_on_load_answer_at_once_and_leave_the_server_whole(hostile_repo):
    s = Server([hostile_repo], "--model-control-mode", "explicit",
               "--load-on-demand", "false").start()
    try:
        before = rss_kib(s.proc.pid)
        for name, (relative, kind, words) in HOSTILE.items():
            r = requests.post(f"{s.base}/v2/repository/models/{name}/load", json={}, timeout=20)
            assert r.status_code == 400, (name, r.status_code, r.text)
            assert EXPECTED[kind] in r.json()["error"], (name, r.text)
        # Later model operations are not held up by anything those left behind.
        for name in HOSTILE:
            r = requests.post(f"{s.base}/v2/repository/models/{name}/load", json={}, timeout=20)
            assert r.status_code == 400, (name, r.text)
        r = requests.post(f"{s.base}/v2/repository/models/add_sub/load", json={}, timeout=20)
        assert r.status_code == 200, r.text
        r = requests.post(f"{s.base}/v2/repository/models/add_sub/unload", json={}, timeout=20)
        assert r.status_code == 200, r.text
        # /dev/zero read "whole" grew the server by gigabytes.
        assert rss_kib(s.proc.pid) - before < 256 * 1024
    finally:
        assert s.stop() == 0, s.text()[-3000:]


def test_a_warmup_file_swapped_for_a_fifo_is_refused(tmp_path):
    repo = tmp_path / "repo"
    model = copy_model("add_sub", repo, "warm")
    config = model / "config.pbtxt"
    config.write_text(config.read_text() + """
model_warmup [{ name: "w" batch_size: 1
  inputs { key: "INPUT0" value: { data_type: TYPE_FP32 dims: [4] input_data_file: "in.bin" } }
  inputs { key: "INPUT1" value: { data_type: TYPE_FP32 dims: [4] zero_data: true } } }]
""")
    (model / "warmup").mkdir()
    os.mkfifo(model / "warmup" / "in.bin")
    s = Server([repo]).start()
    try:
        state, reason = reasons(s)["warm"]
        assert state == "UNAVAILABLE" and "in.bin" in reason, reason
        assert "regular file" in reason, reason
    finally:
        assert s.stop() == 0, s.text()[-3000:]
