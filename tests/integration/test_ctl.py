"""`mmserve ctl`, the command-line client: every command through the real
binary against a real server (explicit control mode): models, load/unload,
stats, usage with tenants and API keys, infer from .npy files and JSON, the
errors, and top (--once, and live under tmux with 'q' to quit)."""
import json
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import threading
import time
import uuid

import numpy as np
import pytest
import requests

from conftest import EXAMPLES, Server, binary
from test_tenancy import stored

KEY_A = "team-a-ctl-key-0123456789abcdef"
KEY_OPS = "ops-ctl-key-0123456789abcdef0123"
ODD_NAME = "add sub+1"  # a space and a '+': percent-encoded in the path


def copy_add_sub(repo, name):
    shutil.copytree(EXAMPLES / "add_sub", repo / name)
    config = repo / name / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "add_sub"', f"name: {json.dumps(name)}"))


def ctl(server, *args, key=None, env=None, timeout=120):
    """Runs `mmserve ctl ARGS` with MMSERVE_URL pointing at `server`."""
    e = dict(os.environ)
    e.pop("MMSERVE_API_KEY", None)
    e["MMSERVE_URL"] = server.base if server is not None else "http://127.0.0.1:9"
    if key is not None:
        e["MMSERVE_API_KEY"] = key
    e.update(env or {})
    return subprocess.run([str(binary()), "ctl", *map(str, args)], capture_output=True, text=True,
                          env=e, timeout=timeout)


def index(server, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = requests.post(server.base + "/v2/repository/index", json={}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def state_of(server, name):
    states = [m["state"] for m in index(server) if m["name"] == name]
    return states[0] if states else None


def infer_add_sub(server, name="add_sub", n=1, key=None):
    body = {"inputs": [
        {"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [10, 20, 30, 40]}]}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = f"{server.base}/v2/models/{requests.utils.quote(name, safe='')}/infer"
    for _ in range(n):
        r = requests.post(url, json=body, headers=headers, timeout=30)
        assert r.status_code == 200, r.text


class Traffic:
    """Sends add_sub inferences on a thread until stopped (for top's rates)."""

    def __init__(self, server, key=None):
        self.server, self.key = server, key
        self.stop_event = threading.Event()
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_event.is_set():
            try:
                infer_add_sub(self.server, key=self.key)
            except Exception as e:  # reported by stop()
                self.errors.append(e)
                return
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(30)
        assert not self.errors, self.errors


def rows(table_text):
    """A table's lines split into cells (columns are at least two spaces apart)."""
    lines = [line for line in table_text.splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("ctl_repo")
    copy_add_sub(repo, "add_sub")
    copy_add_sub(repo, "add_sub_spare")
    copy_add_sub(repo, ODD_NAME)
    s = Server([repo], "--model-control-mode", "explicit", "--load-model", "add_sub").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


@pytest.fixture(scope="module")
def tenants_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctl_tenants")
    repo_a = root / "a"
    repo_a.mkdir()
    copy_add_sub(repo_a, "add_sub")
    tenants = root / "tenants.yaml"
    tenants.write_text("\n".join([
        "tenants:",
        "  - id: team-a",
        f"    api_keys: ['{stored(KEY_A)}']",
        f"    repositories: [{repo_a}]",
        "  - id: ops",
        f"    api_keys: ['{stored(KEY_OPS)}']",
        "    role: admin",
    ]) + "\n")
    s = Server([repo_a], "--tenants", tenants, "--model-control-mode", "explicit",
               "--load-model", "add_sub").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


# ------------------------------------------------------------------ usage

def test_help_and_usage_errors(server):
    out = ctl(server, "--help")
    assert out.returncode == 0, out.stderr
    for command in ("models", "load", "unload", "stats", "usage", "infer", "top"):
        assert command in out.stdout
    assert "MMSERVE_URL" in out.stdout and "MMSERVE_API_KEY" in out.stdout
    out = ctl(server, "infer", "--help")
    assert out.returncode == 0 and "--input" in out.stdout and "NAME=FILE.npy" in out.stdout
    out = ctl(server, "top", "--help")
    assert out.returncode == 0 and "--once" in out.stdout and "--interval" in out.stdout
    # Usage errors exit 2, before any request.
    assert ctl(server).returncode == 2
    assert ctl(server, "frobnicate").returncode == 2
    assert ctl(server, "models", "--bogus").returncode == 2
    assert ctl(server, "load").returncode == 2  # MODEL is required
    assert ctl(server, "infer", "add_sub").returncode == 2  # --input is required
    out = ctl(server, "infer", "add_sub", "--input", "INPUT0")
    assert out.returncode == 2 and "NAME=FILE.npy" in out.stderr
    out = ctl(server, "infer", "add_sub", "--input", "INPUT0=[[1,2],[3]]")
    assert out.returncode == 2 and "ragged" in out.stderr
    assert ctl(server, "top", "--interval", "0").returncode == 2


def closed_port():
    """A local port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_is_named(server):
    url = f"http://127.0.0.1:{closed_port()}"
    out = ctl(None, "models", env={"MMSERVE_URL": url})
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: cannot reach the server at {url}: "), out.stderr
    # --url wins over MMSERVE_URL.
    out = ctl(None, "--url", server.base, "models", env={"MMSERVE_URL": url})
    assert out.returncode == 0, out.stderr


# ----------------------------------------------------------------- models

def test_models_table_and_json(server):
    out = ctl(server, "models", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == index(server)
    out = ctl(server, "models")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = lines[0]
    assert re.match(r"NAME\s+VERSION\s+STATE\s+REASON$", header), header
    table = {r[0]: r for r in rows(out.stdout)[1:]}
    assert table["add_sub"][1:3] == ["1", "READY"]
    assert table["add_sub_spare"][2] != "READY"
    assert ODD_NAME in table
    # Aligned: every row's STATE starts under the header's.
    state_col = header.index("STATE")
    for line in lines[1:]:
        assert line[state_col - 2:state_col] == "  " and line[state_col] != " ", line


def test_load_and_unload_change_the_state(server):
    assert state_of(server, "add_sub_spare") != "READY"
    out = ctl(server, "load", "add_sub_spare")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"model 'add_sub_spare' loaded \(\d+\.\d s\)\n", out.stdout), out.stdout
    assert out.stderr == ""  # no progress line when stderr is not a terminal
    assert state_of(server, "add_sub_spare") == "READY"
    out = ctl(server, "unload", "add_sub_spare")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"model 'add_sub_spare' unloaded \(\d+\.\d s\)\n", out.stdout)
    end = time.monotonic() + 60
    while state_of(server, "add_sub_spare") == "READY":
        assert time.monotonic() < end, "add_sub_spare stayed READY after unload"
        time.sleep(0.05)


def test_load_percent_encodes_the_name_and_takes_a_config(server, tmp_path):
    out = ctl(server, "load", ODD_NAME)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"model '{ODD_NAME}' loaded")
    assert state_of(server, ODD_NAME) == "READY"
    # --config @file: the model's own configuration, as the server reports it.
    config = requests.get(f"{server.base}/v2/models/{requests.utils.quote(ODD_NAME, safe='')}"
                          "/config", timeout=30)
    assert config.status_code == 200, config.text
    (tmp_path / "config.json").write_text(config.text)
    out = ctl(server, "load", ODD_NAME, "--config", f"@{tmp_path / 'config.json'}")
    assert out.returncode == 0, out.stderr
    assert state_of(server, ODD_NAME) == "READY"
    assert ctl(server, "unload", ODD_NAME).returncode == 0
    # Not JSON: refused before any request.
    out = ctl(server, "load", ODD_NAME, "--config", "{not json")
    assert out.returncode == 1 and "--config is not valid JSON" in out.stderr
    out = ctl(server, "load", ODD_NAME, "--config", f"@{tmp_path / 'missing.json'}")
    assert out.returncode == 1 and "missing.json" in out.stderr


def test_load_shows_progress_on_a_terminal_and_clears_it(server):
    """stderr on a pseudo-terminal: the progress line is drawn, then erased."""
    main, sub = pty.openpty()
    env = dict(os.environ, MMSERVE_URL=server.base)
    env.pop("MMSERVE_API_KEY", None)
    try:
        proc = subprocess.Popen([str(binary()), "ctl", "load", "add_sub_spare"],
                                stdout=subprocess.PIPE, stderr=sub, env=env)
        os.close(sub)
        sub = None
        seen = b""
        end = time.monotonic() + 120
        while time.monotonic() < end:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # the other side closed
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        stdout, _ = proc.communicate(timeout=60)
    finally:
        os.close(main)
        if sub is not None:
            os.close(sub)
    assert proc.returncode == 0, seen
    assert stdout.decode().startswith("model 'add_sub_spare' loaded")
    text = seen.decode(errors="replace")
    assert "loading 'add_sub_spare'" in text, text
    assert re.search(r"\d+\.\d s", text), text
    assert text.endswith("\r\x1b[K"), repr(text[-80:])  # the line is cleared at the end
    assert ctl(server, "unload", "add_sub_spare").returncode == 0


def test_unknown_model_errors_carry_the_servers_message(server):
    for args in (("load", "no_such_model"), ("stats", "no_such_model"),
                 ("infer", "no_such_model", "--input", "x=[1,2]")):
        out = ctl(server, *args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert out.stderr.startswith("error: ") and "no_such_model" in out.stderr, out.stderr
        assert out.stdout == ""


# ------------------------------------------------------------------ stats

def test_stats_after_inferences(server):
    def success():
        r = requests.get(server.base + "/v2/models/add_sub/stats", timeout=30).json()
        return r["model_stats"][0]["inference_stats"]["success"]["count"]

    before = success()
    infer_add_sub(server, n=3)
    out = ctl(server, "stats", "add_sub", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    [entry] = doc["model_stats"]
    stat = entry["inference_stats"]
    assert stat["success"]["count"] == before + 3
    out = ctl(server, "stats", "add_sub")
    assert out.returncode == 0, out.stderr
    table = rows(out.stdout)
    assert table[0] == ["MODEL", "VERSION", "SUCCESS", "FAILURES", "EXECUTIONS", "ROWS",
                        "QUEUE MS", "INFER MS", "TOTAL MS"]
    [row] = table[1:]
    assert row[:6] == ["add_sub", "1", str(stat["success"]["count"]), str(stat["fail"]["count"]),
                       str(entry["execution_count"]), str(entry["inference_count"])]
    total_ms = stat["success"]["ns"] / stat["success"]["count"] / 1e6
    assert float(row[8]) == pytest.approx(total_ms, rel=0.01, abs=0.001)
    infer_ms = stat["compute_infer"]["ns"] / stat["compute_infer"]["count"] / 1e6
    assert float(row[7]) == pytest.approx(infer_ms, rel=0.01, abs=0.001)


# ------------------------------------------------------------------ infer

def parse_outputs(text):
    """{name: (datatype, shape, values)} from ctl infer's lines."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\S+): (\S+) \[([\d,]*)\] = \[(.*)\]", line)
        assert m, line
        shape = [int(d) for d in m.group(3).split(",") if d]
        out[m.group(1)] = (m.group(2), shape, [float(v) for v in m.group(4).split(", ")])
    return out


def test_infer_with_npy_files(server, tmp_path):
    a = np.array([1.5, 2, 3, 4], dtype=np.float32)
    b = np.array([10, 20, 30, 40], dtype=np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = ctl(server, "infer", "add_sub", "--input", f"INPUT0={tmp_path / 'a.npy'}",
              "--input", f"INPUT1={tmp_path / 'b.npy'}")
    assert out.returncode == 0, out.stderr
    outputs = parse_outputs(out.stdout)
    assert outputs["OUTPUT0"] == ("FP32", [4], list(a + b))
    assert outputs["OUTPUT1"] == ("FP32", [4], list(a - b))


def test_infer_with_inline_json_and_json_files(server, tmp_path):
    out = ctl(server, "infer", "add_sub", "--input", "INPUT0=[1,2,3,4]",
              "--input", "INPUT1=[4,3,2,1]")
    assert out.returncode == 0, out.stderr
    outputs = parse_outputs(out.stdout)
    assert outputs["OUTPUT0"] == ("FP32", [4], [5, 5, 5, 5])
    assert outputs["OUTPUT1"] == ("FP32", [4], [-3, -1, 1, 3])
    # A JSON file, an .npy file, one output asked for, a version named.
    (tmp_path / "x.json").write_text("[0.5, 0.25, 0, -1]")
    np.save(tmp_path / "y.npy", np.ones(4, dtype=np.float32))
    out = ctl(server, "infer", "add_sub", "--version", "1", "--input",
              f"INPUT0=@{tmp_path / 'x.json'}", "--input", f"INPUT1={tmp_path / 'y.npy'}",
              "--output", "OUTPUT1")
    assert out.returncode == 0, out.stderr
    assert parse_outputs(out.stdout) == {"OUTPUT1": ("FP32", [4], [-0.5, -0.75, -1, -2])}
    # --json prints the server's response.
    out = ctl(server, "infer", "add_sub", "--input", "INPUT0=[1,2,3,4]",
              "--input", "INPUT1=[1,1,1,1]", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    data = {o["name"]: o["data"] for o in doc["outputs"]}
    assert data == {"OUTPUT0": [2, 3, 4, 5], "OUTPUT1": [0, 1, 2, 3]}


def test_infer_errors(server, tmp_path):
    a = tmp_path / "a.npy"
    np.save(a, np.zeros(4, dtype=np.float32))
    # Not an .npy file at all.
    bad = tmp_path / "bad.npy"
    bad.write_text("just text")
    out = ctl(server, "infer", "add_sub", "--input", f"INPUT0={bad}", "--input", f"INPUT1={a}")
    assert out.returncode == 1
    assert str(bad) in out.stderr and "not a usable .npy file" in out.stderr, out.stderr
    # Big-endian and Fortran-ordered data: named, with what was expected.
    big = tmp_path / "big.npy"
    np.save(big, np.zeros(4, dtype=">f4"))
    out = ctl(server, "infer", "add_sub", "--input", f"INPUT0={big}", "--input", f"INPUT1={a}")
    assert out.returncode == 1 and str(big) in out.stderr and "big-endian" in out.stderr
    assert "<f4" in out.stderr
    fortran = tmp_path / "fortran.npy"
    np.save(fortran, np.asfortranarray(np.zeros((2, 2), dtype=np.float32)))
    out = ctl(server, "infer", "add_sub", "--input", f"INPUT0={fortran}", "--input", f"INPUT1={a}")
    assert out.returncode == 1 and "Fortran" in out.stderr
    missing = tmp_path / "missing.npy"
    out = ctl(server, "infer", "add_sub", "--input", f"INPUT0={missing}", "--input", f"INPUT1={a}")
    assert out.returncode == 1 and str(missing) in out.stderr
    # The server's own checks: a wrong datatype, an unknown input.
    f64 = tmp_path / "f64.npy"
    np.save(f64, np.zeros(4, dtype=np.float64))
    out = ctl(server, "infer", "add_sub", "--input", f"INPUT0={f64}", "--input", f"INPUT1={a}")
    assert out.returncode == 1 and out.stderr.startswith("error: ") and "INPUT0" in out.stderr
    out = ctl(server, "infer", "add_sub", "--input", "NOPE=[1,2,3,4]")
    assert out.returncode == 1 and "has no input 'NOPE'" in out.stderr, out.stderr
    assert "INPUT0" in out.stderr


# ------------------------------------------------------------ usage, keys

def test_usage_and_api_keys(tenants_server):
    infer_add_sub(tenants_server, n=2, key=KEY_A)
    # The admin sees every tenant; MMSERVE_API_KEY is honoured.
    out = ctl(tenants_server, "usage", "--json", key=KEY_OPS)
    assert out.returncode == 0, out.stderr
    doc = {t["tenant"]: t for t in json.loads(out.stdout)["tenants"]}
    assert {"team-a", "ops"} <= set(doc)
    [add_sub] = doc["team-a"]["models"]
    assert add_sub["name"] == "add_sub" and add_sub["requests"] >= 2
    out = ctl(tenants_server, "usage", key=KEY_OPS)
    assert out.returncode == 0, out.stderr
    table = rows(out.stdout)
    assert table[0] == ["TENANT", "MODEL", "REQUESTS", "FAILURES", "COMPUTE S", "BYTES IN",
                        "BYTES OUT", "REFUSED"]
    team_a = [r for r in table[1:] if r[0] == "team-a"]
    assert team_a and team_a[0][1] == "add_sub" and team_a[0][2] == str(add_sub["requests"])
    assert any(r[0] == "ops" for r in table[1:])
    # A tenant sees only its own usage.
    out = ctl(tenants_server, "usage", "--json", key=KEY_A)
    assert out.returncode == 0, out.stderr
    assert [t["tenant"] for t in json.loads(out.stdout)["tenants"]] == ["team-a"]
    # A wrong key: the server's 401 message, exit 1; the key is never printed.
    wrong = "wrong-key-0123456789abcdef0123"
    out = ctl(tenants_server, "usage", key=wrong)
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and "API key is not valid" in out.stderr, out.stderr
    assert wrong not in out.stdout + out.stderr
    # No key at all.
    out = ctl(tenants_server, "models")
    assert out.returncode == 1 and "no API key" in out.stderr, out.stderr
    # --api-key wins over MMSERVE_API_KEY.
    out = ctl(tenants_server, "--api-key", KEY_OPS, "usage", "--json", key=wrong)
    assert out.returncode == 0, out.stderr
    assert "ops" in {t["tenant"] for t in json.loads(out.stdout)["tenants"]}
    out = ctl(tenants_server, "usage", "--api-key", wrong, key=KEY_OPS)  # after the command too
    assert out.returncode == 1 and "API key is not valid" in out.stderr
    # Keys work for every command, e.g. infer and models.
    out = ctl(tenants_server, "infer", "add_sub", "--input", "INPUT0=[1,2,3,4]",
              "--input", "INPUT1=[1,2,3,4]", key=KEY_A)
    assert out.returncode == 0, out.stderr
    assert parse_outputs(out.stdout)["OUTPUT0"] == ("FP32", [4], [2, 4, 6, 8])
    out = ctl(tenants_server, "models", key=KEY_A)
    assert out.returncode == 0 and "add_sub" in out.stdout


def test_top_needs_an_admin_key_with_tenants(tenants_server):
    out = ctl(tenants_server, "top", "--once", "--interval", "0.2", key=KEY_A)
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and "admin" in out.stderr, out.stderr
    out = ctl(tenants_server, "top", "--once", "--interval", "0.2", key=KEY_OPS)
    assert out.returncode == 0, out.stderr
    assert "add_sub" in out.stdout and "team-a" in out.stdout


# -------------------------------------------------------------------- top

def top_row(text, name):
    for cells in rows(text):
        if cells and cells[0] == name:
            return cells
    return None


def test_top_once_prints_one_frame_with_rates(server):
    with Traffic(server):
        out = ctl(server, "top", "--once", "--interval", "1")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout  # no escapes: for scripts
    lines = out.stdout.splitlines()
    assert lines[0].startswith("mmserve"), lines[0]
    assert "up " in lines[0] and "slots " in lines[0] and "memory " in lines[0]
    header = [r for r in rows(out.stdout) if r and r[0] == "MODEL"][0]
    assert header == ["MODEL", "VERSION", "STATE", "TENANT", "REQ/S", "ERR/S", "P50 MS",
                      "P99 MS", "QUEUE", "EXEC", "MEMORY"]
    row = top_row(out.stdout, "add_sub")
    assert row is not None, out.stdout
    assert row[1] == "1" and row[2] == "READY"
    assert float(row[4]) > 0, row  # req/s over the interval
    assert float(row[6]) > 0 and float(row[7]) >= float(row[6]), row  # p50 <= p99


def test_top_live_in_tmux_quits_on_q(server):
    tmux = shutil.which("tmux")
    assert tmux, "tmux not found (scripts/install-deps.sh installs it)"
    tmux_socket = f"mmserve-ctl-{uuid.uuid4().hex[:12]}"
    session = "top"

    def t(*args, check=True):
        return subprocess.run([tmux, "-L", tmux_socket, *args], capture_output=True, text=True,
                              timeout=30, check=check)

    command = (f"env MMSERVE_URL={server.base} MMSERVE_API_KEY= TERM=xterm "
               f"{binary()} ctl top --interval 0.5")
    try:
        t("new-session", "-d", "-s", session, "-x", "160", "-y", "40", command)
        with Traffic(server):
            end = time.monotonic() + 90  # a hang guard only
            screen = ""
            while True:
                screen = t("capture-pane", "-p", "-t", session, check=False).stdout
                row = top_row(screen, "add_sub")
                if row is not None and len(row) > 4 and re.fullmatch(r"[\d.]+", row[4]) \
                        and float(row[4]) > 0:
                    break
                assert time.monotonic() < end, f"no req/s for add_sub on the screen:\n{screen}"
                time.sleep(0.1)
        assert "REQ/S" in screen and "q: quit" in screen
        t("send-keys", "-t", session, "q")
        end = time.monotonic() + 30
        while t("has-session", "-t", session, check=False).returncode == 0:
            assert time.monotonic() < end, "top did not exit on 'q':\n" + t(
                "capture-pane", "-p", "-t", session, check=False).stdout
            time.sleep(0.1)
    finally:
        subprocess.run([tmux, "-L", tmux_socket, "kill-server"], capture_output=True, timeout=30)
        # The socket file stays behind the server it named.
        tmux_dir = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}")
        try:
            os.unlink(os.path.join(tmux_dir, tmux_socket))
        except FileNotFoundError:
            pass
