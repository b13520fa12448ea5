"""--mlflow-create-env: an MLflow pyfunc model runs in a Python environment
made (by the real uv, from the package index) from its own python_env.yaml /
requirements.txt, cached and reused after a restart; hostile requirement
files are refused with a reason while the other models serve.

The model needs `roman`, which the test environment (--python-env) lacks:
only its own environment can serve it.
"""
import sys
from pathlib import Path

import pytest
import requests

from conftest import Server
from test_s3_repository import infer_plus, plus_model

mlflow = pytest.importorskip("mlflow")
import cloudpickle  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import numpy  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402

VENV = Path(sys.prefix)


class Roman(mlflow.pyfunc.PythonModel):
    """Numbers to Roman numerals, with a package only its environment has."""

    def predict(self, context, model_input, params=None):
        import roman
        return model_input["n"].map(roman.toRoman)


def save_roman(folder):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    numbers = pd.DataFrame({"n": [1, 4]})
    # mlflow-skinny (not mlflow) keeps the environment small.
    requirements = [f"mlflow-skinny=={mlflow.__version__}", f"numpy=={numpy.__version__}",
                    f"pandas=={pd.__version__}", f"cloudpickle=={cloudpickle.__version__}",
                    "roman==4.2"]
    mlflow.pyfunc.save_model(folder, python_model=Roman(), pip_requirements=requirements,
                             signature=infer_signature(numbers, pd.Series(["I", "IV"])))


def index_of(server):
    r = requests.post(f"{server.base}/v2/repository/index", timeout=30)
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()}


def to_roman(server, numbers):
    r = requests.post(f"{server.base}/v2/models/roman/infer", timeout=120, json={
        "inputs": [{"name": "n", "shape": [len(numbers)], "datatype": "INT64", "data": numbers}]})
    assert r.status_code == 200, (r.text, server.text()[-3000:])
    return r.json()["outputs"][0]["data"]


def test_a_model_runs_in_the_environment_made_from_its_requirements(tmp_path):
    with pytest.raises(ImportError):
        import roman  # noqa: F401  (the test environment must not have it)
    repo = tmp_path / "repo"
    save_roman(repo / "roman" / "1")
    # Requirement files a tenant could write to choose another index, a
    # local path or a file of the server: refused, naming the line.
    for name, text in {"index": "numpy\n--index-url http://127.0.0.1:9/simple\n",
                       "path": "numpy\n-r /etc/passwd\n",
                       "url": "roman @ https://127.0.0.1:9/roman.whl\n"}.items():
        save_roman(repo / name / "1")
        (repo / name / "1" / "requirements.txt").write_text(text)
    # A package the index does not have: uv's own reason.
    save_roman(repo / "missing" / "1")
    (repo / "missing" / "1" / "requirements.txt").write_text("mmserve-no-such-package==1.0\n")
    (repo / "plus" / "1").mkdir(parents=True)
    (repo / "plus" / "1" / "model.onnx").write_bytes(plus_model(3))
    envs = tmp_path / "envs"
    args = ["--python-env", VENV, "--mlflow-create-env",
            "--backend-config", f"python,env-cache-dir={envs}"]
    server = Server([repo], *args).start()
    try:
        assert to_roman(server, [1, 4, 1999]) == ["I", "IV", "MCMXCIX"]
        assert "--mlflow-create-env, the model's python_env.yaml (made in" in server.text()
        index = index_of(server)
        for name, why in {"index": "is or holds a pip option", "path": "is or holds a pip option",
                          "url": "is a direct reference"}.items():
            assert index[name]["state"] == "UNAVAILABLE", index[name]
            assert why in index[name]["reason"] and "requirements.txt line" in \
                index[name]["reason"], index[name]
        assert index["missing"]["state"] == "UNAVAILABLE", index["missing"]
        assert "mmserve-no-such-package" in index["missing"]["reason"], index["missing"]
        assert infer_plus(server.url, "plus") == 3.0
    finally:
        assert server.stop() == 0, server.text()[-3000:]
    made = [p for p in envs.iterdir() if p.is_dir() and p.name.startswith("requirements-")]
    assert len(made) == 1, list(envs.iterdir())  # only the good one was kept
    # A restart uses the environment made before: uv does not run again.
    (made[0] / "mmserve-uv-ran-again").write_text("")
    server = Server([repo], *args, "--load-model", "roman",
                    "--model-control-mode", "explicit").start()
    try:
        assert to_roman(server, [3]) == ["III"]
        assert "(made before in " + str(made[0]) in server.text(), server.text()[-3000:]
        assert (made[0] / "mmserve-uv-ran-again").exists()
    finally:
        assert server.stop() == 0, server.text()[-3000:]

