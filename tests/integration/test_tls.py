"""TLS and mutual TLS on HTTP and gRPC (--tls-cert, --tls-key, --tls-client-ca).

The certificates are made here, with the openssl command line tool: a CA, a
server certificate for localhost and 127.0.0.1 signed by it, a client
certificate signed by it, and a client certificate signed by another CA.
"""
import secrets
import socket
import ssl
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import EXAMPLES, Server, binary, wait_for_log

# Only add_sub: quicker to start, and every test here infers with it.
ONE_MODEL = ["--model-control-mode", "explicit", "--load-model", "add_sub"]


# ------------------------------------------------------------ certificates

@dataclass
class Certs:
    ca: Path  # signs the server's and the good client's certificates
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path  # signed by another CA
    other_client_key: Path


def openssl(folder, *args):
    out = subprocess.run(["openssl", *args], cwd=folder, capture_output=True, text=True)
    assert out.returncode == 0, f"openssl {' '.join(args)}:\n{out.stderr}"


def make_ca(folder, name):
    openssl(folder, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN=mmserve test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_leaf(folder, name, ca, common_name, extensions):
    openssl(folder, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={common_name}")
    (folder / f"{name}.ext").write_text("\n".join([
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid,issuer",
        *extensions]) + "\n")
    openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", str(secrets.randbits(63)), "-days", "2", "-out", f"{name}.pem",
            "-extfile", f"{name}.ext")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_leaf(d, "server", "ca", "localhost",
              ["extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    make_leaf(d, "client", "ca", "good client", ["extendedKeyUsage=clientAuth"])
    make_leaf(d, "other-client", "other-ca", "stranger", ["extendedKeyUsage=clientAuth"])
    return Certs(ca=d / "ca.pem", server_cert=d / "server.pem", server_key=d / "server.key",
                 client_cert=d / "client.pem", client_key=d / "client.key",
                 other_client_cert=d / "other-client.pem", other_client_key=d / "other-client.key")


# ------------------------------------------------------------------ servers

def start_tls_server(certs, *extra, mutual=False):
    """A server with --tls-cert/--tls-key (and --tls-client-ca when mutual),
    ready: the fixture's own readiness poll speaks plain HTTP, so this one
    polls over TLS."""
    args = ["--tls-cert", certs.server_cert, "--tls-key", certs.server_key, *ONE_MODEL, *extra]
    if mutual:
        args += ["--tls-client-ca", certs.ca]
    s = Server([EXAMPLES], *args).start(wait_ready=False)
    client_cert = (str(certs.client_cert), str(certs.client_key)) if mutual else None
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if s.proc.poll() is not None:
            raise RuntimeError("mmserve exited:\n" + s.text())
        try:
            r = requests.get(f"https://127.0.0.1:{s.port}/v2/health/ready", verify=str(certs.ca),
                             cert=client_cert, timeout=5)
            if r.status_code == 200:
                return s
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    s.stop()
    raise RuntimeError("mmserve never became ready over TLS:\n" + s.text())


@pytest.fixture(scope="module")
def tls_server(certs):
    # A short handshake limit, so that the silent-client test ends soon.
    s = start_tls_server(certs, "--tls-handshake-timeout-ms", "2000")
    yield s
    assert s.stop() == 0, s.text()[-5000:]


@pytest.fixture(scope="module")
def mtls_server(certs):
    s = start_tls_server(certs, "--log-level", "debug", mutual=True)
    yield s
    assert s.stop() == 0, s.text()[-5000:]


# ------------------------------------------------------------------ clients

A = np.array([1.0, 2.5, -3.0, 4.0], dtype=np.float32)
B = np.array([0.5, 0.5, 1.0, -4.0], dtype=np.float32)


def http_client(server, certs, cert=None, key=None, ca=True):
    options = {"ca_certs": str(certs.ca)} if ca else {}
    if cert is not None:
        options.update(certfile=str(cert), keyfile=str(key))
    return httpclient.InferenceServerClient(server.url, ssl=True, ssl_options=options)


def grpc_client(server, certs, cert=None, key=None):
    return grpcclient.InferenceServerClient(
        server.grpc_url, ssl=True, root_certificates=str(certs.ca),
        private_key=None if key is None else str(key),
        certificate_chain=None if cert is None else str(cert))


def check_http(client):
    assert client.is_server_ready()
    inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(A, binary_data=True)
    inputs[1].set_data_from_numpy(B, binary_data=False)
    result = client.infer("add_sub", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - B)


def check_grpc(client):
    assert client.is_server_ready(client_timeout=60)
    inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"), grpcclient.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    result = client.infer("add_sub", inputs, client_timeout=60)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - B)


def tls_socket(server, certs, cert=None, key=None):
    context = ssl.create_default_context(cafile=str(certs.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    return context.wrap_socket(raw, server_hostname="localhost")


def read_all(sock):
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:  # ssl.SSLError (an alert), a reset
            break
        if not chunk:
            break
        data += chunk
    return data


# -------------------------------------------------------------------- TLS

def test_tls_http_ready_and_infer(tls_server, certs):
    assert "HTTP server listening on" in tls_server.text() and "with TLS" in tls_server.text()
    with closing(http_client(tls_server, certs)) as client:
        check_http(client)


def test_tls_grpc_ready_and_infer(tls_server, certs):
    with closing(grpc_client(tls_server, certs)) as client:
        check_grpc(client)


def test_tls_http_client_that_does_not_trust_the_ca_is_refused(tls_server, certs):
    # The system's CAs did not sign the test certificate: the client refuses the server.
    with closing(http_client(tls_server, certs, ca=False)) as client:
        with pytest.raises(Exception):
            client.is_server_ready()


def test_plain_http_to_the_tls_port_fails_and_the_server_keeps_serving(tls_server, certs):
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"http://127.0.0.1:{tls_server.port}/v2/health/ready", timeout=60)
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=60) as s:
        s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not read_all(s).startswith(b"HTTP/1.1 200")  # closed, no HTTP answer
    plain = httpclient.InferenceServerClient(tls_server.url)
    try:
        with pytest.raises(Exception):
            plain.is_server_ready()
    finally:
        plain.close()
    assert tls_server.proc.poll() is None
    with closing(http_client(tls_server, certs)) as client:
        check_http(client)


def test_plain_grpc_to_the_tls_port_fails(tls_server, certs):
    plain = grpcclient.InferenceServerClient(tls_server.grpc_url)
    try:
        with pytest.raises(InferenceServerException):
            plain.is_server_ready(client_timeout=60)
    finally:
        plain.close()
    with closing(grpc_client(tls_server, certs)) as client:
        check_grpc(client)


def test_tls_connection_runs_the_same_http_logic(tls_server, certs):
    """Pipelining, keep-alive and the lingering close after a 413 over TLS."""
    with tls_socket(tls_server, certs) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /v2/models/add_sub/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_all(s)
    assert data.count(b"HTTP/1.1 200 OK") == 2, data
    assert b"Connection: close" in data
    # A body over --max-request-bytes (1 KiB is the least it takes): 413, then close.
    with tls_socket(tls_server, certs) as s:
        s.sendall(b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                  + str(80 << 20).encode() + b"\r\n\r\n" + b"x" * 1024)
        data = read_all(s)
    assert data.startswith(b"HTTP/1.1 413"), data


def test_a_silent_client_is_closed_after_the_handshake_limit(tls_server, certs):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=60) as s:
        # Sends nothing: the server closes it once --tls-handshake-timeout-ms passes.
        assert read_all(s) == b""
    with closing(http_client(tls_server, certs)) as client:
        check_http(client)


def test_stop_closes_idle_and_handshaking_tls_connections(certs):
    # A handshake limit far beyond the fixture's 60 s wait for the exit: the
    # stop must close the silent connection, not wait for its limit.
    s = start_tls_server(certs, "--tls-handshake-timeout-ms", "600000")
    silent = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    idle = http_client(s, certs)
    try:
        check_http(idle)  # leaves a kept-alive TLS connection
        assert s.stop() == 0, s.text()[-5000:]
        assert read_all(silent) == b""
    finally:
        silent.close()
        idle.close()
        s.stop()


# ------------------------------------------------------------- mutual TLS

def test_mtls_client_with_a_certificate_from_the_ca_works(mtls_server, certs):
    assert "mutual TLS on" in mtls_server.text()
    with closing(http_client(mtls_server, certs, certs.client_cert, certs.client_key)) as client:
        check_http(client)
    with closing(grpc_client(mtls_server, certs, certs.client_cert, certs.client_key)) as client:
        check_grpc(client)


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_mtls_http_refuses_a_client_without_a_good_certificate(mtls_server, certs, who):
    cert, key = ((None, None) if who == "no certificate"
                 else (certs.other_client_cert, certs.other_client_key))
    with closing(http_client(mtls_server, certs, cert, key)) as client:
        with pytest.raises(Exception):
            client.is_server_ready()
    # TLS 1.3 refuses the client's certificate after the client's side of the
    # handshake is done (1.2 during it): either way the request gets no answer.
    data = b""
    try:
        with tls_socket(mtls_server, certs, cert, key) as s:
            s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
            data = read_all(s)
    except OSError:  # ssl.SSLError, a reset or a broken pipe
        pass
    assert data == b""
    wait_for_log(mtls_server, "TLS handshake from 127.0.0.1:")
    # The server goes on serving clients with a good certificate.
    with closing(http_client(mtls_server, certs, certs.client_cert, certs.client_key)) as good:
        check_http(good)


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_mtls_grpc_refuses_a_client_without_a_good_certificate(mtls_server, certs, who):
    cert, key = ((None, None) if who == "no certificate"
                 else (certs.other_client_cert, certs.other_client_key))
    with closing(grpc_client(mtls_server, certs, cert, key)) as client:
        with pytest.raises(InferenceServerException):
            client.is_server_ready(client_timeout=60)
    with closing(grpc_client(mtls_server, certs, certs.client_cert, certs.client_key)) as good:
        check_grpc(good)


# -------------------------------------------------------------- bad flags

def run_server(*args):
    out = subprocess.run([str(binary()), "--model-repository", str(EXAMPLES), "--http-port", "0",
                          "--grpc-port", "0", "--metrics-port", "0", "--model-control-mode", "explicit",
                          *[str(a) for a in args]],
                         capture_output=True, text=True, timeout=120)
    return out.returncode, out.stdout + out.stderr


def test_key_without_cert_is_refused(certs):
    code, text = run_server("--tls-key", certs.server_key)
    assert code != 0 and "--tls-key" in text and "--tls-cert" in text, text


def test_cert_without_key_is_refused(certs):
    code, text = run_server("--tls-cert", certs.server_cert)
    assert code != 0 and "--tls-cert" in text and "--tls-key" in text, text


def test_client_ca_without_cert_is_refused(certs):
    code, text = run_server("--tls-client-ca", certs.ca)
    assert code != 0 and "--tls-client-ca" in text and "--tls-cert" in text, text


def test_a_missing_file_is_refused(certs, tmp_path):
    missing = tmp_path / "nowhere.pem"
    code, text = run_server("--tls-cert", missing, "--tls-key", certs.server_key)
    assert code != 0 and "--tls-cert" in text and str(missing) in text, text
    code, text = run_server("--tls-cert", certs.server_cert, "--tls-key", certs.server_key,
                            "--tls-client-ca", missing)
    assert code != 0 and "--tls-client-ca" in text and str(missing) in text, text


def test_a_key_that_does_not_match_the_cert_is_refused(certs):
    code, text = run_server("--tls-cert", certs.server_cert, "--tls-key", certs.client_key)
    assert code != 0, text
    assert "--tls-key" in text and str(certs.client_key) in text and "--tls-cert" in text, text


def test_a_file_that_is_not_pem_is_refused(certs, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    code, text = run_server("--tls-cert", junk, "--tls-key", certs.server_key)
    assert code != 0 and "--tls-cert" in text and str(junk) in text and "PEM" in text, text
    code, text = run_server("--tls-cert", certs.server_cert, "--tls-key", junk)
    assert code != 0 and "--tls-key" in text and str(junk) in text, text
    code, text = run_server("--tls-cert", certs.server_cert, "--tls-key", certs.server_key,
                            "--tls-client-ca", junk)
    assert code != 0 and "--tls-client-ca" in text and str(junk) in text, text
