"""A large repository in poll mode (issue 21): 2,000 models, of which one is
edited, one added, one removed and one given a new version; after the first
poll (which sets up the inotify watch, src/repository/local/inotify_watch.h,
and lists everything once) each poll scans only what changed, exactly the
changed models reload, and the others keep their copies and serve. Waits on
log lines, never on time."""
import re
import shutil

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from conftest import Server, wait_for_log

COUNT = 2000
IDENTITY = "mmserve_test_identity"


def name(i):
    return f"m{i:04d}"


def write_model(repo, model, version=1, extra=""):
    d = repo / model
    (d / str(version)).mkdir(parents=True, exist_ok=True)
    (d / "config.pbtxt").write_text(
        f'name: "{model}"\nbackend: "{IDENTITY}"\n'
        'input [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] } ]\n' + extra)
    (d / str(version) / "model.bin").write_bytes(b"")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("scale_repo")
    for i in range(COUNT):
        write_model(repo, name(i))
    return repo


def infer(client, model):
    x = np.array([1.5, -2.0], dtype=np.float32)
    inp = httpclient.InferInput("X", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    out = client.infer(model, [inp]).as_numpy("X_OUT")
    np.testing.assert_array_equal(out, x)


def test_a_poll_of_2000_models_reloads_exactly_what_changed(repo):
    server = Server([repo], "--enable-test-backends", "--model-control-mode", "poll",
                    "--repository-poll-secs", "0.2").start()
    try:
        client = httpclient.InferenceServerClient(server.url)
        index = requests.post(f"http://{server.url}/v2/repository/index", json={}).json()
        assert len(index) == COUNT
        assert all(m["state"] == "READY" for m in index)
        for i in (0, 999, COUNT - 1):
            infer(client, name(i))
        # The first poll sets up the watch and lists the repository once;
        # from then on, polls scan what it names.
        wait_for_log(server, "models (a full listing)")
        start_lines = len(server.log)

        # One config edited: that model, and only it, reloads.
        edited = name(1000)
        write_model(repo, edited, extra="# edited\n")
        wait_for_log(server, f"model '{edited}' changed on disk")
        wait_for_log(server, f"model '{edited}' version 1 is READY", count=2)
        # A model added, one removed, one given a version 2.
        write_model(repo, "added")
        shutil.rmtree(repo / name(7))
        write_model(repo, name(1500), version=2)
        wait_for_log(server, "model 'added' version 1 is READY")
        wait_for_log(server, f"model '{name(7)}' version 1 unloaded")
        wait_for_log(server, f"model '{name(1500)}' version 2 is READY")
        wait_for_log(server, f"model '{name(1500)}' version 1 unloaded")
        # A last edit: once it has reloaded, every poll before it has been
        # applied, so nothing else can still be on its way.
        last = name(3)
        write_model(repo, last, extra="# last\n")
        wait_for_log(server, f"model '{last}' version 1 is READY", count=2)

        after = "".join(server.log[start_lines:])
        changed = re.findall(r"model '(\w+)' changed on disk", after)
        assert sorted(set(changed)) == sorted({edited, "added", name(1500), last}), changed
        assert len(changed) == len(set(changed)), changed  # each loaded once
        assert re.findall(r"model '(\w+)' left the repositories", after) == [name(7)]
        # Each poll scanned what its watch named, never the whole repository.
        polls = re.findall(r"poll: scanned (\d+) of (\d+) models \(([^)]*)\)", after)
        assert polls, after[-3000:]
        for scanned, known, how in polls:
            assert how == "those that changed", polls
            assert int(scanned) <= 3, polls
        assert "changed on disk" not in "".join(server.log[:start_lines])

        index = requests.post(f"http://{server.url}/v2/repository/index", json={}).json()
        states = {(m["name"], m.get("version", "")): m["state"] for m in index}
        assert (name(7), "1") not in states
        assert states[("added", "1")] == "READY"
        assert states[(name(1500), "2")] == "READY"
        assert sum(1 for s in states.values() if s == "READY") == COUNT
        for model in (edited, "added", last, name(1500), name(0), name(COUNT - 1)):
            infer(client, model)
        client.close()
    finally:
        code = server.stop()
    assert code == 0, server.text()[-3000:]
