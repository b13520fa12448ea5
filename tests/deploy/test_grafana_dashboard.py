"""deploy/grafana/mmserve.json, the Grafana dashboard: valid JSON and up to
date with its generator, the panels and variables the operators' view needs,
every query valid PromQL (promtool parses it), and every metric it reads
present in a real scrape of mmserve (a release server with a model that has a
drift baseline, after some traffic)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "mmserve.json"


def load():
    return json.loads(DASHBOARD.read_text())


def queries():
    d = load()
    out = [t["expr"] for p in d["panels"] for t in p["targets"]]
    out += [v["query"]["query"] for v in d["templating"]["list"] if v["type"] == "query"]
    return out


def as_promql(expr):
    """A Grafana query as Prometheus sees it: variables replaced by values."""
    expr = expr.replace("$__rate_interval", "5m")
    expr = re.sub(r"\$\{?(instance|tenant|model|datasource)\}?", ".*", expr)
    m = re.fullmatch(r"label_values\((.*), *(\w+)\)", expr)
    return m.group(1) if m else expr  # label_values(SERIES, LABEL): the series


def test_the_dashboard_is_valid_json_and_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT / "deploy" / "grafana" / "make_dashboard.py"),
                        "--check"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    d = load()
    assert d["uid"] == "mmserve" and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))


def test_it_has_the_variables_and_panels_operators_need():
    d = load()
    assert [v["name"] for v in d["templating"]["list"]] == ["datasource", "instance", "tenant",
                                                           "model"]
    titles = " | ".join(p["title"] for p in d["panels"]).lower()
    for wanted in ("request rate", "error ratio", "p50", "p99", "p99.9", "queue and compute",
                   "batch", "memory against the budget", "loads and evictions", "worker restarts",
                   "drift", "usage by tenant", "execution slots"):
        assert wanted in titles, wanted
    for p in d["panels"]:
        for t in p["targets"]:
            if "{" in t["expr"] and "mmserve_memory" not in t["expr"]:
                assert '$instance' in t["expr"], (p["title"], t["expr"])


def test_every_query_parses(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: scripts/install-deps.sh installs it (Debian's prometheus)"
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": as_promql(q)} for i, q in enumerate(queries())]}]}
    path = tmp_path / "queries.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    r = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary():
    for p in (os.environ.get("MMSERVE_RELEASE_BINARY"), ROOT / "build" / "release" / "mmserve"):
        if p and Path(p).exists():
            return str(p)
    pytest.fail("no release mmserve binary (build/release/mmserve): make release")


@pytest.fixture(scope="module")
def scrape(tmp_path_factory):
    """The metric names in a real scrape: add_sub with a drift baseline, every
    request sampled into the drift window, 30 requests; mlp_classifier with a
    bounded queue."""
    repo = tmp_path_factory.mktemp("dashboard_repo")
    shutil.copytree(ROOT / "examples" / "models" / "add_sub", repo / "add_sub")
    # A bounded queue, so that mmserve_inference_queue_capacity has a series.
    shutil.copytree(ROOT / "examples" / "models" / "mlp_classifier", repo / "mlp_classifier")
    with open(repo / "mlp_classifier" / "config.pbtxt", "a") as config:
        config.write("dynamic_batching { default_queue_policy { max_queue_size: 16 } }\n")
    samples = repo / "samples.npy"
    np.save(samples, np.random.default_rng(0).random((200, 4), dtype=np.float32))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_drift_baseline.py"), "--input",
                    f"INPUT0={samples}", "--out", str(repo / "add_sub" / "drift_baseline.json")],
                   check=True, capture_output=True)
    http, grpc, metrics = free_port(), free_port(), free_port()
    proc = subprocess.Popen([binary(), "--model-repository", str(repo), "--http-port", str(http),
                             "--grpc-port", str(grpc), "--metrics-port", str(metrics),
                             "--drift-sample-rate", "1", "--drift-window-rows", "10",
                             "--drift-min-rows", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{http}/v2/health/ready", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "mmserve did not start"
            time.sleep(0.05)
        body = {"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [0.1, 0.5, 0.9, 0.3]},
                           {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}
        for _ in range(30):
            assert requests.post(f"http://127.0.0.1:{http}/v2/models/add_sub/infer", json=body,
                                 timeout=10).ok
        text = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=10).text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return {m.group(1) for m in re.finditer(r"^(\w+)(?:\{| )", text, re.M)}


def test_every_metric_is_in_a_real_scrape(scrape):
    used = set()
    for q in queries():
        used |= set(re.findall(r"\b(mmserve_[a-z_]+)", q))
    assert used
    missing = sorted(n for n in used if n not in scrape)
    assert not missing, f"not in a scrape of mmserve: {missing}"
    assert "mmserve_drift_psi" in used and "mmserve_inference_batch_size_bucket" in used
