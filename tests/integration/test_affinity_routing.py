"""Model-affinity routing across replicas: nginx (Debian's) with the Helm
chart's own router config (deploy/helm/mmserve/files/nginx-router.conf),
`hash $mmserve_model consistent` over 3 mmserve replicas on loopback, each
loading on demand under a memory budget, with Zipf traffic over many models.

What the fleet must show (issue 24):
  - each model is resident on one replica only;
  - the fleet's hit ratio is at least 0.9x that of one server with 3x the
    budget, on the same request sequence;
  - killing a replica under traffic loses no request (proxy_next_upstream),
    and its models come back on the survivors;
  - a hot model listed in hot-models.map is served by every replica.

Sizes: MMSERVE_ROUTING_MODELS (300) and MMSERVE_ROUTING_REQUESTS (3000).
The servers are the release build: this is about placement, not memory safety
(the ASan build runs every other test).
"""
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient

from conftest import EXAMPLES, ROOT, Server, release_binary

ROUTER_CONF = ROOT / "deploy" / "helm" / "mmserve" / "files" / "nginx-router.conf"
MODELS = int(os.environ.get("MMSERVE_ROUTING_MODELS", "300"))
REQUESTS = int(os.environ.get("MMSERVE_ROUTING_REQUESTS", "3000"))
FOOTPRINT = 1_000_000  # declared per model: the budget's arithmetic is exact
PER_REPLICA = max(4, MODELS // 10)  # models one replica's budget holds
ZIPF_S = 1.1


def model_name(i):
    return f"m{i:04d}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """MODELS copies of add_sub (the same model.onnx, hard-linked), each with a
    declared footprint, plus 'hot_model'."""
    root = tmp_path_factory.mktemp("routing_repo")
    onnx = EXAMPLES / "add_sub" / "1" / "model.onnx"
    config = (EXAMPLES / "add_sub" / "config.pbtxt").read_text()
    for name in [model_name(i) for i in range(MODELS)] + ["hot_model"]:
        (root / name / "1").mkdir(parents=True)
        os.link(onnx, root / name / "1" / "model.onnx")
        text = config.replace('name: "add_sub"', f'name: "{name}"')
        (root / name / "config.pbtxt").write_text(
            text + f"\nmmserve {{ memory_footprint_bytes: {FOOTPRINT} }}\n")
    return root


def start_replica(repo, budget_models):
    return Server([repo], "--model-control-mode", "explicit", "--load-on-demand",
                  "--model-memory-budget", str(budget_models * FOOTPRINT),
                  binary_path=release_binary()).start()


class Router:
    """nginx running the chart's router config against loopback replicas."""

    def __init__(self, tmp, replicas, hot_models=()):
        self.dir = tmp / "nginx"
        conf_dir = self.dir / "mmserve"
        conf_dir.mkdir(parents=True)
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / "temp" / sub).mkdir(parents=True)
        groups = []
        for name, ports, hashed in (
                ("mmserve_replicas", [r.port for r in replicas], True),
                ("mmserve_hot", [r.port for r in replicas], False),
                ("mmserve_replicas_grpc", [r.grpc_port for r in replicas], True),
                ("mmserve_hot_grpc", [r.grpc_port for r in replicas], False)):
            lines = [f"upstream {name} {{"]
            if hashed:
                lines.append("    hash $mmserve_model consistent;")
            lines += [f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports]
            lines += ["    keepalive 16;", "}"]
            groups.append("\n".join(lines))
        (conf_dir / "upstream.conf").write_text("\n".join(groups) + "\n")
        (conf_dir / "hot-models.map").write_text("".join(f"{m} 1;\n" for m in hot_models))
        self.port, self.grpc_port = free_port(), free_port()
        site = ROUTER_CONF.read_text()
        for old, new in (("/etc/nginx/mmserve/", f"{conf_dir}/"),
                         ("listen 8080;", f"listen 127.0.0.1:{self.port};"),
                         ("listen 8081 http2;", f"listen 127.0.0.1:{self.grpc_port} http2;")):
            assert old in site, f"{ROUTER_CONF} no longer contains {old!r}"
            site = site.replace(old, new)
        (self.dir / "site.conf").write_text(site)
        temp = self.dir / "temp"
        (self.dir / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {self.dir}/site.conf;
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        check = subprocess.run([nginx, "-t", "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                                "-c", str(self.dir / "nginx.conf")], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([nginx, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                                      "-c", str(self.dir / "nginx.conf")])
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.base + "/router/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, self.errors()
            time.sleep(0.05)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def errors(self):
        log = self.dir / "error.log"
        return log.read_text() if log.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


BODY = {"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                   {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}


def infer(session, base, model):
    r = session.post(f"{base}/v2/models/{model}/infer", json=BODY, timeout=120)
    return r.status_code, r


def zipf_sequence(n, seed):
    """n model names, Zipf(ZIPF_S) over MODELS ranks, ranks shuffled onto names."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, MODELS + 1) ** ZIPF_S
    order = rng.permutation(MODELS)
    picks = rng.choice(MODELS, size=n, p=weights / weights.sum())
    return [model_name(order[p]) for p in picks]


def ready_models(server):
    r = requests.post(server.base + "/v2/repository/index", json={"ready": True}, timeout=30)
    assert r.status_code == 200, r.text
    return {m["name"] for m in r.json() if m.get("state") == "READY"}


def metric_sum(server, name):
    text = requests.get(server.metrics_url, timeout=30).text
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"{name}(?:{{[^}}]*}})? (\S+)$", line)
        if m:
            total += float(m.group(1))
    return total


def hit_ratio(servers, requests_sent):
    loads = sum(metric_sum(s, "mmserve_model_on_demand_loads_total") for s in servers)
    return 1.0 - loads / requests_sent


def served_counts(server):
    """Per model, the inferences this server answered (its statistics)."""
    r = requests.get(server.base + "/v2/models/stats", timeout=30)
    assert r.status_code == 200, r.text
    return {s["name"]: s["inference_count"] for s in r.json()["model_stats"]
            if s.get("inference_count", 0) > 0}


@pytest.fixture(scope="module")
def fleet(repo, tmp_path_factory):
    replicas = [start_replica(repo, PER_REPLICA) for _ in range(3)]
    router = Router(tmp_path_factory.mktemp("router"), replicas, hot_models=["hot_model"])
    yield router, replicas
    router.stop()
    for r in replicas:
        r.stop()


def test_each_model_lives_on_one_replica_and_the_hit_ratio_matches_one_big_server(fleet, repo):
    router, replicas = fleet
    sequence = zipf_sequence(REQUESTS, seed=24)
    session = requests.Session()
    answered_by = {}
    for model in sequence:
        code, r = infer(session, router.base, model)
        assert code == 200, r.text
        answered_by.setdefault(model, set()).add(r.headers["X-MMServe-Replica"])
    # Every request for a model went to one replica, and only that replica
    # holds it (or evicted it): the READY sets are disjoint.
    assert all(len(addrs) == 1 for addrs in answered_by.values()), answered_by
    resident = [ready_models(r) for r in replicas]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not resident[i] & resident[j], (i, j, resident[i] & resident[j])
    for r, models in zip(replicas, resident):
        for m in models:
            assert answered_by[m] == {f"127.0.0.1:{r.port}"}, (m, answered_by[m], r.port)
    # Every replica took part (3 replicas, hundreds of models).
    assert all(served_counts(r) for r in replicas)
    fleet_hits = hit_ratio(replicas, len(sequence))

    # The same sequence against one server with the fleet's whole budget.
    single = start_replica(repo, 3 * PER_REPLICA)
    try:
        for model in sequence:
            code, r = infer(session, single.base, model)
            assert code == 200, r.text
        single_hits = hit_ratio([single], len(sequence))
    finally:
        single.stop()
    print(f"\naffinity routing: hit ratio of a fleet of 3 (budget {PER_REPLICA} models each) "
          f"{fleet_hits:.3f}, one server (budget {3 * PER_REPLICA}) {single_hits:.3f}, "
          f"ratio {fleet_hits / single_hits:.3f}; {MODELS} models, {len(sequence)} requests")
    assert fleet_hits >= 0.9 * single_hits, (fleet_hits, single_hits)


def test_a_hot_model_is_served_by_every_replica(fleet):
    router, replicas = fleet
    session = requests.Session()
    seen = set()
    for _ in range(30):
        code, r = infer(session, router.base, "hot_model")
        assert code == 200, r.text
        seen.add(r.headers["X-MMServe-Replica"])
    assert seen == {f"127.0.0.1:{r.port}" for r in replicas}
    for r in replicas:
        assert served_counts(r).get("hot_model", 0) >= 1


def test_grpc_routes_on_the_mm_model_header(fleet):
    router, replicas = fleet
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{router.grpc_port}")
    before = [served_counts(r).get(model_name(1), 0) for r in replicas]
    for _ in range(5):
        inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"),
                  grpcclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(np.arange(4, dtype=np.float32))
        inputs[1].set_data_from_numpy(np.ones(4, dtype=np.float32))
        out = client.infer(model_name(1), inputs, headers={"mm-model": model_name(1)})
        np.testing.assert_array_equal(out.as_numpy("OUTPUT0"), np.arange(4) + 1)
    after = [served_counts(r).get(model_name(1), 0) for r in replicas]
    grown = [a - b for a, b in zip(after, before)]
    assert sorted(grown) == [0, 0, 5], grown  # all five on one replica


def test_killing_a_replica_loses_no_request_and_its_models_come_back(fleet):
    router, replicas = fleet
    resident = [ready_models(r) for r in replicas]
    victim = max(range(3), key=lambda i: len(resident[i]))
    survivors = [r for i, r in enumerate(replicas) if i != victim]
    victim_models = sorted(resident[victim] - {"hot_model"})
    assert victim_models
    # Traffic from 4 clients; the victim dies (SIGKILL) once a quarter is done.
    sequence = victim_models * 3 + zipf_sequence(600, seed=7)
    np.random.default_rng(3).shuffle(sequence)
    done = 0
    lock = threading.Lock()
    killed = threading.Event()
    local = threading.local()

    def one(model):
        nonlocal done
        if not hasattr(local, "session"):
            local.session = requests.Session()
        code, r = infer(local.session, router.base, model)
        with lock:
            done += 1
            if done == len(sequence) // 4 and not killed.is_set():
                replicas[victim].proc.kill()
                killed.set()
        return model, code, r.text if code != 200 else ""

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, sequence))
    assert killed.is_set()
    failures = [(m, code, text) for m, code, text in results if code != 200]
    assert not failures, (failures[:5], router.errors()[-3000:])
    replicas[victim].proc.wait(30)
    # The victim's models were asked for again after it died: each is now on
    # exactly one survivor (or was evicted there), never on both.
    now = [ready_models(r) - {"hot_model"} for r in survivors]
    assert not now[0] & now[1], now[0] & now[1]
    back = [m for m in victim_models if m in now[0] | now[1]]
    assert back, "none of the killed replica's models is resident on a survivor"
    for m in victim_models:  # and each answers through the router
        code, r = infer(requests.Session(), router.base, m)
        assert code == 200, r.text
        assert r.headers["X-MMServe-Replica"] in {f"127.0.0.1:{s.port}" for s in survivors}
