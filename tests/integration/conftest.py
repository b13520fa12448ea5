"""Fixtures that start a real mmserve process and talk to it.

The server binary comes from $MMSERVE_BINARY (scripts/run-tests.sh sets it to
the sanitizer build); it listens on a port the kernel picks (--http-port 0)
and the fixture reads that port from the server's log.
"""
import fcntl
import os
import re
import select
import signal
import socket
import shutil
import subprocess
import struct
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "models"


def binary() -> Path:
    path = Path(os.environ.get("MMSERVE_BINARY", ROOT / "build" / "asan" / "mmserve"))
    if not path.exists():
        pytest.exit(f"mmserve binary not found at {path}: build first (make test)", 2)
    return path


def release_binary() -> Path:
    """The optimized build, for measurements a sanitizer would distort
    (scripts/run-tests.sh sets $MMSERVE_RELEASE_BINARY)."""
    path = Path(os.environ.get("MMSERVE_RELEASE_BINARY", ROOT / "build" / "release" / "mmserve"))
    if not path.exists():
        pytest.fail(f"release mmserve binary not found at {path}: build it (make release)")
    return path


class Server:
    """One mmserve process. `log` collects everything it printed, line by line.

    Reading `log` or `text()` first catches up with the pipe: every line the
    server wrote before the call is in what it returns. So a test that checks
    for a line the server logs before it answers can check it right after the
    answer (a line logged after, or by another thread, still needs
    wait_for_log)."""

    def __init__(self, repos, *extra, binary_path=None, env=None):
        self.binary_path = binary_path
        self.env = dict(env or {})  # added to (or, with None values, removed from) os.environ
        self.repos = [str(r) for r in repos]
        self.extra = [str(e) for e in extra]
        self.proc = None
        self.port = None
        self.grpc_port = None
        self.metrics_port = None
        self._lines = []
        self._pump_lock = threading.Lock()  # held while a chunk is read and split into lines
        self._pump_done = False
        self._port_seen = threading.Event()

    def start(self, wait_ready=True):
        args = [str(self.binary_path or binary()), "--http-port", "0", "--grpc-port", "0",
                "--metrics-port", "0", "--log-level", "info"]
        for r in self.repos:
            args += ["--model-repository", r]
        args += self.extra
        # examples/models' Python models import scikit-learn: served, as by
        # `make serve`, with this venv's packages.
        if str(EXAMPLES) in self.repos and "--python-env" not in self.extra:
            args += ["--python-env", sys.prefix]
        # The gRPC suites run once per transport (scripts/run-tests.sh sets
        # MMSERVE_GRPC_TRANSPORT=grpcpp for the second run; native is the
        # default); a test that names one keeps it.
        transport = os.environ.get("MMSERVE_GRPC_TRANSPORT")
        if transport and "--grpc-transport" not in self.extra:
            args += ["--grpc-transport", transport]
        # A Python worker importing MLflow, pandas or torch under a whole
        # sanitizer test run on 2 busy cores can take more than the default
        # minute to start (seen on CI). Tests about the start limit name their own.
        if "--worker-start-timeout-secs" not in self.extra:
            args += ["--worker-start-timeout-secs", "300"]
        env = dict(os.environ)
        for name, value in self.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        env.setdefault("LSAN_OPTIONS", f"suppressions={ROOT / 'tests' / 'lsan.supp'}")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env)
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._port_seen.wait(60) or self.port is None or self.grpc_port is None:
            # Not listening within the minute, or it exited before it listened.
            self.stop()
            raise RuntimeError("mmserve did not start:\n" + "".join(self.log))
        if wait_ready:
            self.wait_ready()
        return self

    def _pump(self):
        fd = self.proc.stdout.fileno()
        readable = select.poll()  # not select(): fds above 1023 in a long session
        readable.register(fd, select.POLLIN | select.POLLHUP)
        pending = b""
        while True:
            readable.poll()
            with self._pump_lock:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    if pending:
                        self._take(pending.decode("utf-8", "replace"))
                    self._pump_done = True
                    break
                *whole, pending = (pending + chunk).split(b"\n")
                for raw in whole:
                    self._take(raw.decode("utf-8", "replace") + "\n")
        self._port_seen.set()

    def _take(self, line):
        self._lines.append(line)
        m = re.search(r"HTTP server listening on [^:]+:(\d+)", line)
        if m and self.port is None:
            self.port = int(m.group(1))
        m = re.search(r"metrics at http://[^:]+:(\d+)/metrics", line)
        if m and self.metrics_port is None:
            self.metrics_port = int(m.group(1))
        m = re.search(r"gRPC server listening on [^:]+:(\d+)", line)
        if m and self.grpc_port is None:
            self.grpc_port = int(m.group(1))
        if self.port is not None and self.grpc_port is not None:
            self._port_seen.set()

    def _catch_up(self, deadline_s=2):
        """Waits until the pump has taken every byte now in the pipe (bounded:
        a server that never stops logging gets what is there by the deadline)."""
        if self.proc is None:
            return
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            with self._pump_lock:
                if self._pump_done:
                    return
                unread = fcntl.ioctl(self.proc.stdout.fileno(), termios.FIONREAD, b"\0" * 4)
                if struct.unpack("i", unread)[0] == 0:
                    return
            time.sleep(0.001)

    @property
    def log(self):
        self._catch_up()
        return self._lines

    @property
    def url(self):
        return f"localhost:{self.port}"

    @property
    def grpc_url(self):
        return f"localhost:{self.grpc_port}"

    @property
    def metrics_url(self):
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, deadline_s=120):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("mmserve exited:\n" + "".join(self.log))
            try:
                if requests.get(self.base + "/v2/health/ready", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("mmserve never became ready:\n" + "".join(self.log))

    def stop(self, sig=signal.SIGTERM):
        """Stops the server and returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def text(self):
        return "".join(self.log)  # caught up (see the class)


def hold_served_connections(server, n, deadline_s=60):
    """Opens n HTTP/1.1 connections that the server serves (each answers a
    health request), for tests of --max-connections. The client's earlier
    connections (the readiness probe's) are closed on its side, but the server
    may not have seen those closes yet: a 503 then means "not yet", so that
    connection is dropped and another is tried."""
    held = []
    end = time.monotonic() + deadline_s
    while len(held) < n:
        h = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        h.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        head = h.recv(4096)
        if head.startswith(b"HTTP/1.1 200"):
            held.append(h)
            continue
        h.close()
        assert head.startswith(b"HTTP/1.1 503") and time.monotonic() < end, head
        time.sleep(0.05)
    return held


def wait_for_log(server, text, count=1, deadline_s=60):
    """Waits until `server` has logged `text` `count` times (it happens
    eventually; the deadline only bounds a failure)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if server.text().count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"'{text}' not logged {count} times:\n" + server.text()[-3000:])


@pytest.fixture(scope="session")
def extra_repo(tmp_path_factory):
    """A repository of the test-only models: every dtype, and models that must fail."""
    repo = tmp_path_factory.mktemp("repo")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example_models.py"),
                    "--all-types", str(repo)], check=True, stdout=subprocess.DEVNULL)
    # A model file that is not ONNX.
    (repo / "garbage" / "1").mkdir(parents=True)
    (repo / "garbage" / "1" / "model.onnx").write_bytes(b"this is not an onnx model")
    # A config.pbtxt that does not parse.
    shutil.copytree(EXAMPLES / "add_sub", repo / "bad_config")
    (repo / "bad_config" / "config.pbtxt").write_text('name: "bad_config"\nmax_batch_size: "x"\n')
    # A config that contradicts the model: INPUT0 is FP32 in the ONNX file.
    shutil.copytree(EXAMPLES / "add_sub", repo / "wrong_dtype")
    cfg = (EXAMPLES / "add_sub" / "config.pbtxt").read_text()
    cfg = cfg.replace('name: "add_sub"', 'name: "wrong_dtype"')
    cfg = cfg.replace("TYPE_FP32", "TYPE_INT32", 1)
    (repo / "wrong_dtype" / "config.pbtxt").write_text(cfg)
    return repo


@pytest.fixture(scope="session")
def server(extra_repo):
    s = Server([EXAMPLES, extra_repo]).start()
    yield s
    code = s.stop()
    assert code == 0, f"mmserve exited with {code}:\n{s.text()[-5000:]}"


@pytest.fixture()
def grpc_client(server):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_url)
    yield client
    client.close()


@pytest.fixture()
def http_client(server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.url)
    yield client
    client.close()
