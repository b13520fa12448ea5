"""An S3-compatible store for the tests of `--model-repository s3://...`.

MotoServer runs moto in server mode (a real HTTP server, path-style S3 and
IAM) in its own process group; FaultProxy sits between mmserve and moto and
breaks responses on demand; tmpfs() gives a small filesystem to fill up.

    with MotoServer(tmp_path) as moto, FaultProxy(moto.endpoint) as proxy:
        moto.create_bucket("models")
        moto.upload_tree("models", "repo", local_repo)
        moto.enable_auth()
        key_id, secret = moto.make_reader(["models"])
        proxy.cut("/models/repo/add_sub/1/model.onnx", after_bytes=100)
        ... mmserve --model-repository s3://models/repo, endpoint proxy.endpoint ...

moto keeps everything in memory: restart() (same port) loses buckets, users,
keys and the auth switch, as a fresh server would.
"""
import contextlib
import hashlib
import http.client
import io
import itertools
import json
import os
import random
import re
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import namedtuple
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

REGION = "us-east-1"
# Any key works while moto's auth is off (the default).
ANONYMOUS_KEY = ("testing", "testing")

LargeObject = namedtuple("LargeObject", "path size md5 etag")


def client_config(**overrides):
    """Path-style addressing and a single attempt: a fault must reach the test,
    not a retry. (botocore's retries={"max_attempts": 1} means one *retry*.)"""
    return Config(**{"s3": {"addressing_style": "path"},
                     "retries": {"total_max_attempts": 1, "mode": "standard"}, **overrides})


def s3_client(endpoint, key_id=ANONYMOUS_KEY[0], secret=ANONYMOUS_KEY[1], service="s3",
              **config):
    """A boto3 client of `service` at endpoint; config: more botocore Config options."""
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=client_config(**config))


def _kill_group(proc):
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class MotoServer:
    """moto_server on 127.0.0.1, its output in `log_path` (under `tmp_dir`)."""

    def __init__(self, tmp_dir=None, start_timeout_s=60):
        self.tmp_dir = Path(tmp_dir or tempfile.mkdtemp(prefix="moto-"))
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.tmp_dir / "moto_server.log"
        self.start_timeout_s = start_timeout_s
        self.port = None
        self.proc = None
        self._finalizer = None
        self._reset_state()

    def _reset_state(self):
        self.auth_enabled = False
        self._admin_key = None
        self._users = {}            # access key id -> user name
        self._names = itertools.count(1)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, port=None):
        """Starts on `port`, or on one the kernel picks (moto prints it) when None."""
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self._launch(port, deadline):
                return self
            # Only a fixed port can be busy (an outgoing connection may hold it a moment).
            if port is None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def _launch(self, port, deadline):
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port or 0)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self._finalizer = weakref.finalize(self, _kill_group, self.proc)
        while time.monotonic() < deadline:
            m = re.search(r"Running on http://127\.0\.0\.1:(\d+)", self.log_text()[offset:])
            if m:
                self.port = int(m.group(1))
                self._wait_answers(deadline)
                return True
            if self.proc.poll() is not None:
                return False          # e.g. "Address already in use"
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"moto_server printed no port:\n{self.log_text()[-3000:]}")

    def _wait_answers(self, deadline):
        while time.monotonic() < deadline:
            try:
                requests.get(self.endpoint + "/moto-api/", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"moto_server never answered:\n{self.log_text()[-3000:]}")

    def stop(self):
        """Kills the process group and waits for it."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self._finalizer()         # SIGKILL if still there, then wait
            self.proc = None

    def restart(self):
        """Same port, empty state: buckets, users and keys are gone, auth is off."""
        port = self.port
        self.stop()
        self._reset_state()
        return self.start(port)

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- clients and auth -------------------------------------------------
    def _admin_creds(self):
        if self._admin_key is None:
            if self.auth_enabled:
                raise RuntimeError("auth was enabled without an admin key")
            self._admin_key = self._create_user("admin", {"Action": "*", "Resource": "*"},
                                                ANONYMOUS_KEY)
        return self._admin_key

    def admin(self):
        return s3_client(self.endpoint, *self._admin_creds())

    def iam(self):
        return s3_client(self.endpoint, *self._admin_creds(), service="iam")

    def _create_user(self, name, statement, creds):
        iam = s3_client(self.endpoint, *creds, service="iam")
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": [dict(Effect="Allow", **statement)]}
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy",
                            PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        self._users[key["AccessKeyId"]] = name
        return key["AccessKeyId"], key["SecretAccessKey"]

    def enable_auth(self):
        """From now on every request needs a valid key of a user allowed to do it
        (403 InvalidAccessKeyId, SignatureDoesNotMatch or AccessDenied)."""
        self._admin_creds()
        # moto answers 500 to a form content-type here.
        r = requests.post(self.endpoint + "/moto-api/reset-auth", data=b"0",
                          headers={"Content-Type": "text/plain"}, timeout=10)
        r.raise_for_status()
        self.auth_enabled = True

    def make_reader(self, buckets):
        """A new user allowed s3:* on just `buckets`: returns (key_id, secret)."""
        resources = [arn for b in buckets for arn in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")]
        return self._create_user(f"reader-{next(self._names)}",
                                 {"Action": "s3:*", "Resource": resources}, self._admin_creds())

    def revoke(self, key_id):
        """Deletes the access key: requests signed with it then get 403."""
        self.iam().delete_access_key(UserName=self._users.pop(key_id), AccessKeyId=key_id)

    # --- objects ----------------------------------------------------------
    def create_bucket(self, name):
        self.admin().create_bucket(Bucket=name)

    def put(self, bucket, key, data):
        """Returns the ETag, without quotes."""
        return self.admin().put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')

    def delete(self, bucket, key):
        self.admin().delete_object(Bucket=bucket, Key=key)

    def etag(self, bucket, key):
        return self.admin().head_object(Bucket=bucket, Key=key)["ETag"].strip('"')

    def upload_tree(self, bucket, prefix, local_dir):
        """Uploads every file under local_dir as prefix/relative/path; returns the keys."""
        client, root, keys = self.admin(), Path(local_dir), []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            key = "/".join(filter(None, [prefix.strip("/"), path.relative_to(root).as_posix()]))
            client.upload_file(str(path), bucket, key)
            keys.append(key)
        return keys

    def upload_large(self, bucket, key, size_bytes, single_part=False, part_size=8 << 20):
        """Uploads `size_bytes` of seeded random bytes (a copy stays in tmp_dir).

        Multipart by default when larger than part_size (ETag "<hex>-<parts>");
        single_part=True forces one PUT (ETag = MD5 of the content)."""
        path = self.tmp_dir / f"large-{next(self._names)}.bin"
        rng, md5, left = random.Random(f"{bucket}/{key}/{size_bytes}"), hashlib.md5(), size_bytes
        with open(path, "wb") as f:
            while left:
                block = rng.randbytes(min(left, 4 << 20))
                md5.update(block)
                f.write(block)
                left -= len(block)
        client = self.admin()
        if single_part:
            with open(path, "rb") as f:
                client.put_object(Bucket=bucket, Key=key, Body=f)
        else:
            client.upload_file(str(path), bucket, key, Config=TransferConfig(
                multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=4))
        return LargeObject(path, size_bytes, md5.hexdigest(), self.etag(bucket, key))


# --- the fault-injecting proxy ---------------------------------------------
_S3_CODES = {400: "BadRequest", 403: "AccessDenied", 404: "NoSuchKey", 500: "InternalError",
             503: "SlowDown"}


class _Fault:
    def __init__(self, kind, path_part, times, method=None, **kw):
        self.kind, self.path_part, self.times, self.method = kind, path_part, times, method
        self.__dict__.update(kw)

    def matches(self, kinds, method, target):
        return (self.kind in kinds and self.path_part in target
                and (self.method is None or self.method == method))


class _ThreadingServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # answers Expect: 100-continue like a real server
    server_version = "FaultProxy"

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        super().handle_one_request()
        self.close_connection = True  # one request per connection

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = bytearray()         # forwarded as it came, framing included
            while True:
                line = self.rfile.readline(65537)
                raw += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while line not in (b"\r\n", b"\n", b""):
                        line = self.rfile.readline(65537)
                        raw += line
                    return bytes(raw)
                raw += self.rfile.read(size + 2)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self):
        proxy, method, target = self.server.fault_proxy, self.command, self.path
        body = self._read_body()
        fault = proxy._take(("status",), method, target)
        if fault:
            return self._send_error(fault.code, fault.s3_code)
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port,
                                              timeout=proxy.upstream_timeout_s)
        try:
            upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                upstream.putheader(name, value)
            upstream.endheaders()
            if body:
                upstream.send(body)
            resp = upstream.getresponse()
        except (OSError, http.client.HTTPException) as e:
            upstream.close()
            return self._send_error(502, "BadGateway", f"upstream: {e}")
        with contextlib.closing(upstream):
            self._relay(proxy, method, target, resp)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = _forward

    def _relay(self, proxy, method, target, resp):
        skip = ("connection", "keep-alive", "transfer-encoding")
        headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in skip]
        no_body = method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        source = resp
        if no_body:
            length = 0
        elif resp.getheader("Content-Length") is not None:
            length = int(resp.getheader("Content-Length"))
        else:                         # chunked or close-delimited: resent with a length
            source = io.BytesIO(resp.read())
            length = len(source.getvalue())
            headers.append(("Content-Length", str(length)))
        fault = None
        if 200 <= resp.status < 300 and length > 0:
            fault = proxy._take(("cut", "corrupt", "stall"), method, target)
        proxy._record(method, target, resp.status)
        head = [f"HTTP/1.1 {resp.status} {resp.reason}"] + [f"{k}: {v}" for k, v in headers]
        self.wfile.write(("\r\n".join(head + ["Connection: close", "", ""])).encode("latin-1"))

        flip_at = length // 2 if fault and fault.kind == "corrupt" else -1
        sent = 0

        def pump(n):                  # sends the next n bytes of the body
            nonlocal sent
            while n > 0:
                chunk = source.read(min(n, 65536))
                if not chunk:
                    raise http.client.IncompleteRead(b"", n)
                if sent <= flip_at < sent + len(chunk):
                    chunk = bytearray(chunk)
                    chunk[flip_at - sent] ^= 0xFF
                self.wfile.write(chunk)
                sent, n = sent + len(chunk), n - len(chunk)

        try:
            if fault and fault.kind in ("cut", "stall"):
                pump(min(fault.after_bytes, length))
                if fault.kind == "cut":
                    return self._abort(fault.rst)
                fault.reached.set()
                while not fault.event.wait(0.05):
                    if proxy._stopping.is_set():
                        return self._abort(True)
            pump(length - sent)
        except (OSError, http.client.HTTPException):   # client gone or upstream broke
            self._abort(True)

    def _send_error(self, code, s3_code=None, message=None):
        s3_code = s3_code or _S3_CODES.get(code, "InternalError")
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{s3_code}</Code>'
                f"<Message>{message or 'Injected by FaultProxy'}</Message>"
                f"<Resource>{self.path.split('?')[0]}</Resource>"
                "<RequestId>FAULTPROXY</RequestId></Error>").encode()
        self.server.fault_proxy._record(self.command, self.path, code)
        head = (f"HTTP/1.1 {code} {phrase}\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\nx-amz-request-id: FAULTPROXY\r\n"
                "Connection: close\r\n\r\n")
        self.wfile.write(head.encode() + (b"" if self.command == "HEAD" else body))

    def _abort(self, rst):
        """Ends the connection now: FIN (the client sees EOF) or, with rst, a reset."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_WR)
        self.connection.close()


class FaultProxy:
    """HTTP/1.1 forwarding proxy to `upstream` (e.g. MotoServer.endpoint).

    Requests go through unchanged (method, raw path and query, headers including
    Host, body); each connection carries one request, and the response gets
    "Connection: close". A fault matches a request whose raw target (path and
    query, as sent: "/bucket/key" or "/bucket?list-type=2&prefix=a%2Fb") contains
    `path_part` (and whose method is `method`, if given), and applies to the next
    `times` matching requests; the first fault set that matches wins. cut, corrupt
    and stall only take (and use up) 2xx responses with a body; status takes any."""

    def __init__(self, upstream, upstream_timeout_s=60):
        m = re.fullmatch(r"http://([^:/]+):(\d+)/?", upstream)
        if not m:
            raise ValueError(f"upstream must be http://HOST:PORT, not {upstream}")
        self.upstream_host, self.upstream_port = m.group(1), int(m.group(2))
        self.upstream_timeout_s = upstream_timeout_s
        self.port = None
        self._lock = threading.Lock()
        self._faults = []
        self._log = []
        self._server = None
        self._thread = None
        self._stopping = threading.Event()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._stopping.clear()
        self.up()
        return self

    def stop(self):
        """Stops listening; stalled responses are reset."""
        self._stopping.set()
        self.down()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def up(self):
        """Listens again, on the same port after down()."""
        if self._server is not None:
            return
        server = _ThreadingServer(("127.0.0.1", self.port or 0), _Handler)
        server.fault_proxy = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FaultProxy:{self.port}", daemon=True)
        self._thread.start()

    def down(self):
        """Closes the listening socket: new connections are refused (ECONNREFUSED).
        Requests already accepted finish."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join()

    # --- faults -------------------------------------------------------------
    def _add(self, fault):
        with self._lock:
            self._faults.append(fault)
        return fault

    def cut(self, path_part, after_bytes, times=1, rst=False, method=None):
        """Sends the headers and the first after_bytes of the body, then closes
        (FIN: the client sees EOF before Content-Length; rst=True: a reset)."""
        self._add(_Fault("cut", path_part, times, method, after_bytes=after_bytes, rst=rst))

    def corrupt(self, path_part, times=1, method=None):
        """Flips (xor 0xFF) the byte at len(body) // 2; the length is unchanged."""
        self._add(_Fault("corrupt", path_part, times, method))

    def status(self, path_part, code, times=1, s3_code=None, method=None):
        """Answers `code` with an S3 XML error (Code: s3_code, or SlowDown for 503,
        InternalError for 500, ...) without forwarding the request."""
        self._add(_Fault("status", path_part, times, method, code=code, s3_code=s3_code))

    def stall(self, path_part, after_bytes, event, times=1, method=None):
        """Sends the headers and the first after_bytes, then waits for `event`
        before sending the rest. Returns an Event set once a response is stalled."""
        return self._add(_Fault("stall", path_part, times, method, after_bytes=after_bytes,
                                event=event, reached=threading.Event())).reached

    def clear(self):
        """Removes every fault (not the log)."""
        with self._lock:
            self._faults.clear()

    def _take(self, kinds, method, target):
        with self._lock:
            for fault in self._faults:
                if fault.matches(kinds, method, target):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- what was seen -------------------------------------------------------
    def _record(self, method, target, status):
        with self._lock:
            self._log.append((method, target, status))

    @property
    def log(self):
        """[(method, raw target, status sent)], oldest first; recorded before the
        response is sent, so complete once the client has its answer."""
        with self._lock:
            return list(self._log)

    def requests(self, path_part=None):
        """How many requests came in (whose target contains path_part)."""
        return sum(1 for _, target, _ in self.log if path_part is None or path_part in target)


@contextlib.contextmanager
def tmpfs(path, size_bytes):
    """A tmpfs of size_bytes mounted at path (created if missing) for the block;
    skips the test when mounting is not allowed."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path}: {(r.stderr or r.stdout).strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)
