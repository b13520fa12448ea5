"""The web console's server side (issue 25): /console's pages with their
content types and security headers, and /console/api/overview, the JSON
document the console and `mmserve ctl top` poll: admin only, every field of
its contract (src/console/console_overview.h) filled from a real server."""
import json
import shutil
import sys

import numpy as np
import pytest
import requests

from conftest import EXAMPLES, Server
from test_tenancy import stored

KEY_OPS = "ops-console-key-0123456789abcdef"
KEY_A = "team-a-console-key-0123456789ab"
HOSTILE = '<img src=x onerror="alert(1)">'


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def copy_add_sub(repo, name):
    shutil.copytree(EXAMPLES / "add_sub", repo / name)
    config = repo / name / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "add_sub"', f"name: {json.dumps(name)}"))


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    shared, team = root / "shared", root / "team"
    shared.mkdir()
    team.mkdir()
    copy_add_sub(shared, "add_sub")
    copy_add_sub(shared, HOSTILE)
    copy_add_sub(team, "team_model")
    # A baseline for add_sub's INPUT0 (4 features, 2 bins each: below and
    # above 0.5), so that the overview has drift to report.
    feature = {"edges": [0.5], "expected": [0.5, 0.5]}
    (shared / "add_sub" / "drift_baseline.json").write_text(json.dumps(
        {"version": 1, "bins": 2, "inputs": {"INPUT0": {"features": [feature] * 4}}}))
    tenants = root / "tenants.yaml"
    tenants.write_text("\n".join([
        "tenants:",
        "  - id: ops",
        f"    api_keys: ['{stored(KEY_OPS)}']",
        "    role: admin",
        "  - id: team-a",
        f"    api_keys: ['{stored(KEY_A)}']",
        f"    repositories: [{team}]",
        "    quotas: {max_concurrency: 3, requests_per_second: 500, burst: 50}",
    ]) + "\n")
    s = Server([shared, team], "--tenants", tenants, "--model-control-mode", "explicit",
               "--load-model", "*", "--model-memory-budget", str(1 << 30),
               "--drift-sample-rate", "1", "--drift-min-rows", "8", "--drift-check-ms",
               "50").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def overview(server, key=KEY_OPS):
    r = requests.get(server.base + "/console/api/overview", headers=bearer(key), timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    return r.json()


def model(doc, name):
    found = [m for m in doc["models"] if m["name"] == name]
    assert len(found) == 1, [m["name"] for m in doc["models"]]
    return found[0]


def infer_add_sub(server, name, key, n):
    body = {"inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    url = f"{server.base}/v2/models/{requests.utils.quote(name, safe='')}/infer"
    for _ in range(n):
        r = requests.post(url, json=body, headers=bearer(key), timeout=30)
        assert r.status_code == 200, r.text
        assert np.allclose(r.json()["outputs"][0]["data"], [1.1, 2.2, 3.3, 4.4])


def test_pages_are_served_to_anyone_with_their_types_and_a_strict_policy(console_server):
    for path, kind in [("/console", "text/html"), ("/console/", "text/html"),
                       ("/console/console.js", "text/javascript"),
                       ("/console/console.css", "text/css")]:
        r = requests.get(console_server.base + path, timeout=30)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["Content-Type"].startswith(kind), path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        policy = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    page = requests.get(console_server.base + "/console/", timeout=30).text
    # Offline: nothing is fetched from anywhere but the server itself.
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert "/console/console.js" in page
    r = requests.get(console_server.base + "/console/nothing.js", timeout=30)
    assert r.status_code == 404 and "/console/" in r.json()["error"]
    r = requests.post(console_server.base + "/console/api/overview", headers=bearer(KEY_OPS),
                      timeout=30)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"


def test_overview_is_for_admins_only(console_server):
    url = console_server.base + "/console/api/overview"
    r = requests.get(url, timeout=30)
    assert r.status_code == 401 and "no API key" in r.json()["error"]
    r = requests.get(url, headers=bearer("not-a-key-of-anyone-0123456789"), timeout=30)
    assert r.status_code == 401
    r = requests.get(url, headers=bearer(KEY_A), timeout=30)
    assert r.status_code == 403
    assert "admin" in r.json()["error"] and "team-a" in r.json()["error"]
    # The key travels in a header only: one in the query string is no key.
    r = requests.get(url + "?key=" + KEY_OPS, timeout=30)
    assert r.status_code == 401


def test_overview_describes_models_memory_slots_and_tenants(console_server):
    doc = overview(console_server)
    assert doc["schema"] == 1
    server = doc["server"]
    assert server["name"] == "mmserve" and server["ready"] is True
    assert server["tenants"] is True and server["control_mode"] == "explicit"
    assert server["uptime_s"] > 0 and server["time_ms"] > 1.7e12
    assert doc["slots"]["size"] >= 1 and doc["slots"]["busy"] >= 0
    bounds = doc["latency_bounds_s"]
    assert len(bounds) == 19 and bounds == sorted(bounds) and bounds[0] == 5e-05

    add_sub = model(doc, "add_sub")
    assert add_sub["state"] == "READY" and add_sub["version"] == 1
    assert add_sub["platform"] == "onnxruntime_onnx"
    assert add_sub["isolation"] == "in-process" and add_sub["instances"] >= 1
    assert add_sub["memory_bytes"] > 0 and add_sub["pinned"] is False
    assert add_sub["stats"]["loads"] == 1 and add_sub["stats"]["last_load_s"] > 0
    assert len(add_sub["stats"]["latency"]["counts"]) == 20
    assert model(doc, "team_model")["tenant"] == "team-a"
    # A hostile name is data: it comes back exactly, as a JSON string.
    assert model(doc, HOSTILE)["state"] == "READY"

    memory = doc["memory"]
    assert memory["budget"] == 1 << 30
    assert memory["loaded"] >= sum(m["memory_bytes"] for m in doc["models"])
    # Every model is idle: all three may go, nobody's before team-a's (a
    # load of nobody's takes its own kind first; memory_planner.h).
    order = [(e["model"], e["tenant"]) for e in memory["eviction_order"]]
    assert memory["evictable"] == 3 and len(order) == 3
    assert order[-1] == ("team_model", "team-a")
    assert {name for name, _ in order[:2]} == {"add_sub", HOSTILE}
    assert all(e["bytes"] > 0 and e["version"] == 1 for e in memory["eviction_order"])

    tenants = {t["id"]: t for t in doc["tenants"]}
    assert tenants["ops"]["role"] == "admin"
    team = tenants["team-a"]
    assert team["role"] == "user"
    assert team["quotas"]["max_concurrency"] == 3
    assert team["quotas"]["requests_per_second"] == 500 and team["quotas"]["burst"] == 50


def test_overview_counts_follow_traffic_and_unloads(console_server):
    before = model(overview(console_server), "add_sub")["stats"]
    infer_add_sub(console_server, "add_sub", KEY_OPS, 12)
    infer_add_sub(console_server, "team_model", KEY_A, 5)
    doc = overview(console_server)
    after = model(doc, "add_sub")
    stats = after["stats"]
    assert stats["success"] - before["success"] == 12
    assert sum(stats["latency"]["counts"]) - sum(before["latency"]["counts"]) == 12
    assert sum(stats["queue"]["counts"]) == stats["success"]
    assert stats["latency"]["sum_s"] > before["latency"]["sum_s"]
    assert stats["executions"] >= 12 and stats["failures"] == before["failures"]
    # Drift: the 4 features of INPUT0, each with a PSI once 8 rows are in.
    drift = after["drift"]
    assert [f["feature"] for f in drift] == [0, 1, 2, 3]
    assert all(f["input"] == "INPUT0" and f["rows"] >= 12 for f in drift)
    assert all(isinstance(f["psi"], float) and f["psi"] >= 0 for f in drift)
    # All values were below 0.5 against a 50/50 baseline: every feature drifted.
    assert all(f["alerting"] for f in drift)
    assert model(doc, "team_model")["drift"] == []
    team = {t["id"]: t for t in doc["tenants"]}["team-a"]
    assert team["requests"] >= 5 and team["compute_s"] > 0 and team["bytes_in"] > 0
    assert team["in_flight"] == 0

    r = requests.post(console_server.base + "/v2/repository/models/team_model/unload", json={},
                      headers=bearer(KEY_OPS), timeout=60)
    assert r.status_code == 200, r.text
    doc = overview(console_server)
    gone = model(doc, "team_model")
    assert gone["state"] == "UNAVAILABLE" and gone["isolation"] == "" and gone["instances"] == 0
    assert gone["memory_bytes"] == 0
    assert "team_model" not in [e["model"] for e in doc["memory"]["eviction_order"]]
    r = requests.post(console_server.base + "/v2/repository/models/team_model/load", json={},
                      headers=bearer(KEY_OPS), timeout=60)
    assert r.status_code == 200, r.text
    again = model(overview(console_server), "team_model")
    assert again["state"] == "READY" and again["stats"]["loads"] == 2


def test_a_python_model_reports_process_isolation(tmp_path):
    shutil.copytree(EXAMPLES / "add_sub_python", tmp_path / "add_sub_python")
    s = Server([tmp_path], "--python-env", sys.prefix).start()
    try:
        doc = requests.get(s.base + "/console/api/overview", timeout=30).json()
        assert doc["server"]["tenants"] is False  # open: no key needed
        m = model(doc, "add_sub_python")
        assert m["state"] == "READY" and m["isolation"] == "process"
        assert m["restarts"] == 0 and m["last_failure"] == ""
        assert [t["id"] for t in doc["tenants"]] != []  # the open server's own tenant
    finally:
        assert s.stop() == 0, s.text()[-3000:]
