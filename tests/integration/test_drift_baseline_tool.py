"""scripts/make_drift_baseline.py: the baseline file it writes from sample
inputs (no server needed)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "scripts" / "make_drift_baseline.py"


def run_tool(*args, cwd=None):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def check_feature(f, bins):
    edges, expected = f["edges"], f["expected"]
    assert len(edges) <= bins - 1
    assert len(expected) == len(edges) + 1
    assert all(a < b for a, b in zip(edges, edges[1:])), "edges strictly ascending"
    assert all(np.isfinite(edges))
    assert all(p >= 0 for p in expected)
    assert sum(expected) == pytest.approx(1.0, abs=1e-9)


def test_writes_quantile_bins(tmp_path):
    rng = np.random.default_rng(7)
    n = 5000
    x = np.empty((n, 4), dtype=np.float32)
    x[:, 0] = rng.normal(3.0, 2.0, n)
    x[:, 1] = rng.uniform(-1, 1, n)
    x[:, 2] = 5.0  # constant
    x[:, 3] = rng.integers(0, 3, n)  # three values
    ids = rng.integers(-1000, 1000, size=(n, 2, 3)).astype(np.int64)  # rows flatten to 6
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "ids.npy", ids)
    out = tmp_path / "drift_baseline.json"
    r = run_tool("--input", f"INPUT0={tmp_path / 'x.npy'}", "--input", f"IDS={tmp_path / 'ids.npy'}",
                 "--bins", 10, "--out", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["version"] == 1 and doc["bins"] == 10
    assert list(doc["inputs"]) == ["INPUT0", "IDS"]
    assert doc["inputs"]["INPUT0"]["rows"] == n
    feats = doc["inputs"]["INPUT0"]["features"]
    assert len(feats) == 4
    assert len(doc["inputs"]["IDS"]["features"]) == 6
    for inp in doc["inputs"].values():
        for f in inp["features"]:
            check_feature(f, 10)

    # Continuous features: 9 cut points, about a tenth of the samples per bin.
    for j in (0, 1):
        assert len(feats[j]["edges"]) == 9
        assert feats[j]["expected"] == pytest.approx([0.1] * 10, abs=0.002)
    # A constant feature: its cut points merge into one, two bins, all mass below.
    assert feats[2] == {"edges": [5.0], "expected": [1.0, 0.0]}
    # Three values: merged to at most 3 cut points, and the fractions are each value's share.
    assert len(feats[3]["edges"]) <= 3
    # The server's rule: bin = number of edges < v (searchsorted side='left'), and the
    # edges round-trip exactly, so recounting with the written edges gives the fractions.
    for j in range(4):
        col = x[:, j].astype(np.float64)
        counts = np.bincount(np.searchsorted(feats[j]["edges"], col, side="left"),
                             minlength=len(feats[j]["edges"]) + 1)
        assert list(counts / n) == feats[j]["expected"]


def test_nan_values_are_left_out(tmp_path):
    x = np.array([[1.0, np.nan], [2.0, np.nan], [np.nan, np.nan], [4.0, np.nan]])
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "b.json"
    r = run_tool("--input", f"X={tmp_path / 'x.npy'}", "--bins", 3, "--out", out)
    assert r.returncode == 0, r.stderr
    feats = json.loads(out.read_text())["inputs"]["X"]["features"]
    for f in feats:
        check_feature(f, 3)
    assert sum(feats[0]["expected"]) == pytest.approx(1.0)
    assert feats[1] == {"edges": [], "expected": [1.0]}
    assert "NaN in every sample" in r.stderr


def test_bool_and_one_dimensional_inputs(tmp_path):
    flags = np.array([True] * 30 + [False] * 70)  # shape [N]: one feature
    np.save(tmp_path / "b.npy", flags)
    r = run_tool("--input", f"FLAG={tmp_path / 'b.npy'}", "--out", tmp_path / "o.json",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (f,) = json.loads((tmp_path / "o.json").read_text())["inputs"]["FLAG"]["features"]
    check_feature(f, 10)
    assert f["edges"] == [0.0, 1.0]
    assert f["expected"] == [0.7, 0.3, 0.0]


def test_default_output_name(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(20, dtype=np.float32).reshape(10, 2))
    r = run_tool("--input", "X=x.npy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "drift_baseline.json").read_text())["bins"] == 10


@pytest.mark.parametrize("args, message", [
    (["--input", "nofile"], "expected NAME=FILE.npy"),
    (["--input", "X=missing.npy"], "cannot read"),
    (["--input", "X=x.npy", "--bins", "101"], "from 1 to 100"),
    (["--input", "X=x.npy", "--input", "X=x.npy"], "given twice"),
    ([], "no --input"),
])
def test_bad_arguments(tmp_path, args, message):
    np.save(tmp_path / "x.npy", np.zeros((4, 2), dtype=np.float32))
    r = run_tool(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr


def test_help_explains_the_format():
    r = run_tool("--help")
    assert r.returncode == 0
    assert "searchsorted" in r.stdout and '"edges"' in r.stdout
