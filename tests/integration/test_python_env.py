"""Python environments for Python models, through a real server: the
--python-env default, a model's EXECUTION_ENV_PATH (a folder, or a
conda-pack/venv-pack .tar.gz unpacked once into a cache), two versions of one
package served side by side, and the environments a server must refuse.

The environments are made here with `python -m venv --without-pip` (no
download) and hold a tiny package, mmenvpkg, whose version each model returns.
"""
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from conftest import ROOT, Server, binary

CONFIG = """
backend: "python"
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "VERSION" data_type: TYPE_STRING dims: [ 1 ] }} ]
{extra}
"""

# As a Triton user writes it: the package comes from the model's environment.
MODEL = textwrap.dedent('''
    import numpy as np
    import triton_python_backend_utils as pb_utils
    import mmenvpkg


    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                version = np.array([mmenvpkg.__version__.encode()], dtype=np.object_)
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("VERSION", version)]))
            return responses
''')


def make_env(root: Path, package_version: str, python_version: str = None) -> Path:
    """A virtual environment holding mmenvpkg `package_version`. With
    `python_version` ("3.10"), one that only looks made by that Python."""
    if python_version is None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
        site = next(root.glob("lib/python3.*/site-packages"))
    else:
        root.mkdir(parents=True)
        (root / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {python_version}.12\n")
        site = root / "lib" / f"python{python_version}" / "site-packages"
        site.mkdir(parents=True)
    (site / "mmenvpkg").mkdir()
    (site / "mmenvpkg" / "__init__.py").write_text(f'__version__ = "{package_version}"\n')
    return root


def add_model(repo: Path, name: str, env_path: str = None):
    extra = ""
    if env_path is not None:
        extra = ('parameters: { key: "EXECUTION_ENV_PATH" value: { string_value: "%s" } }'
                 % env_path)
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(CONFIG.format(extra=extra))
    (repo / name / "1" / "model.py").write_text(MODEL)


def pack(env: Path, archive: Path):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(env, arcname=".")


def version_http(server, name):
    client = httpclient.InferenceServerClient(server.url)
    try:
        inp = httpclient.InferInput("IN", [1], "INT32")
        inp.set_data_from_numpy(np.array([1], dtype=np.int32))
        out = client.infer(name, [inp]).as_numpy("VERSION")
        return out[0].decode()
    finally:
        client.close()


def version_grpc(server, name):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        inp = grpcclient.InferInput("IN", [1], "INT32")
        inp.set_data_from_numpy(np.array([1], dtype=np.int32))
        out = client.infer(name, [inp]).as_numpy("VERSION")
        return out[0].decode()
    finally:
        client.close()


def reasons(server):
    r = requests.post(server.base + "/v2/repository/index", timeout=60)
    assert r.status_code == 200, r.text
    return {m["name"]: (m.get("state"), m.get("reason", "")) for m in r.json()}


def test_two_package_versions_serve_side_by_side(tmp_path):
    repo = tmp_path / "repo"
    add_model(repo, "from_folder", "$$TRITON_MODEL_DIRECTORY/env")
    make_env(repo / "from_folder" / "env", "1.0")
    add_model(repo, "from_archive", "$$TRITON_MODEL_DIRECTORY/env.tar.gz")
    pack(make_env(tmp_path / "packed", "2.0"), repo / "from_archive" / "env.tar.gz")
    add_model(repo, "from_default")
    default_env = make_env(tmp_path / "default", "3.0")
    cache = tmp_path / "cache"
    s = Server([repo], "--python-env", default_env,
               "--backend-config", f"python,env-cache-dir={cache}").start()
    try:
        expected = {"from_folder": "1.0", "from_archive": "2.0", "from_default": "3.0"}
        for name, version in expected.items():
            assert version_http(s, name) == version, s.text()[-3000:]
            assert version_grpc(s, name) == version
        # The archive was unpacked once, into a folder named by its hash.
        unpacked = [p for p in cache.iterdir()]
        assert len(unpacked) == 1 and len(unpacked[0].name) == 64, unpacked
        assert "EXECUTION_ENV_PATH" in s.text() and "unpacked in" in s.text()
    finally:
        assert s.stop() == 0, s.text()[-5000:]
    # A restart finds the archive unpacked already.
    s = Server([repo], "--python-env", default_env,
               "--backend-config", f"python,env-cache-dir={cache}").start()
    try:
        assert version_http(s, "from_archive") == "2.0"
        assert "unpacked before in" in s.text(), s.text()[-3000:]
    finally:
        assert s.stop() == 0, s.text()[-5000:]


def test_environments_that_cannot_serve_are_load_errors(tmp_path):
    repo = tmp_path / "repo"
    add_model(repo, "good", "$$TRITON_MODEL_DIRECTORY/env")
    make_env(repo / "good" / "env", "1.0")
    add_model(repo, "old_python", "$$TRITON_MODEL_DIRECTORY/env")
    make_env(repo / "old_python" / "env", "1.0", python_version="3.10")
    add_model(repo, "missing", "/no/such/environment")
    add_model(repo, "escaping", "$$TRITON_MODEL_DIRECTORY/env.tar.gz")
    with tarfile.open(repo / "escaping" / "env.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("../../outside.py")
        data = b"print('escaped')\n"
        info.size = len(data)
        import io
        tar.addfile(info, io.BytesIO(data))
    # Each link points inside on paper; "up" resolves to the folder above.
    add_model(repo, "chained_links", "$$TRITON_MODEL_DIRECTORY/env.tar.gz")
    with tarfile.open(repo / "chained_links" / "env.tar.gz", "w:gz") as tar:
        for name, target in (("here", "."), ("up", "here/..")):
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    s = Server([repo], "--backend-config", f"python,env-cache-dir={tmp_path / 'cache'}").start()
    try:
        found = reasons(s)
        state, reason = found["chained_links"]
        assert state == "UNAVAILABLE"
        assert "resolves (through other links) outside" in reason, reason
        assert not any((tmp_path / "cache").iterdir()), list((tmp_path / "cache").iterdir())
        assert found["good"][0] == "READY", found
        state, reason = found["old_python"]
        assert state == "UNAVAILABLE"
        assert "Python 3.10" in reason and "embedded Python 3.11" in reason, reason
        state, reason = found["missing"]
        assert state == "UNAVAILABLE"
        assert "EXECUTION_ENV_PATH" in reason and "does not exist" in reason, reason
        state, reason = found["escaping"]
        assert state == "UNAVAILABLE"
        assert "leaves the archive's folder" in reason, reason
        assert not (tmp_path / "outside.py").exists()
        assert not (repo / "outside.py").exists()
        # The others never noticed.
        assert version_http(s, "good") == "1.0"
    finally:
        assert s.stop() == 0, s.text()[-5000:]


@pytest.mark.parametrize("flag,expected", [
    ("tensorflow,x=1", "'tensorflow', a backend this server does not have"),
    ("python,bogus=1", "python backend setting 'bogus' is unknown"),
    ("python", "expected <backend>,<key>=<value>"),
    ("python,env=/nonexistent/venv", "env (--python-env) '/nonexistent/venv': no such folder"),
])
def test_bad_backend_settings_stop_the_server(tmp_path, flag, expected):
    # Run to its exit, not through Server.start: a server that stops before it
    # listens races start()'s readiness poll (seen: requests' InvalidURL on
    # port None instead of the RuntimeError the poll raises once it sees the exit).
    env = dict(os.environ)
    env.setdefault("LSAN_OPTIONS", f"suppressions={ROOT / 'tests' / 'lsan.supp'}")
    proc = subprocess.run(
        [str(binary()), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
         "--model-repository", str(tmp_path), "--backend-config", flag],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=120)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "listening" not in proc.stdout, proc.stdout[-3000:]
    assert expected in proc.stdout, proc.stdout[-3000:]


NUMPY_MODEL = textwrap.dedent('''
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            version = np.array([np.__version__.encode()], dtype=np.object_)
            return [pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("VERSION", version)]) for _ in requests]
''')


def test_the_environments_numpy_is_the_one_models_and_pb_utils_use(tmp_path):
    """Packages in an environment are built against its numpy, so the
    environment goes on sys.path before pb_utils imports numpy."""
    repo = tmp_path / "repo"
    add_model(repo, "numpy_version")
    (repo / "numpy_version" / "1" / "model.py").write_text(NUMPY_MODEL)
    s = Server([repo], "--python-env", sys.prefix).start()  # this test's own venv
    try:
        assert version_http(s, "numpy_version") == np.__version__
    finally:
        assert s.stop() == 0, s.text()[-5000:]
