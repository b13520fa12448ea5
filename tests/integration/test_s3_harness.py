"""The S3 harness itself (s3_server.py): moto in server mode, the fault proxy, tmpfs.

Clients go through the proxy with path-style addressing and no retries, as
mmserve will; nothing waits on a clock (events, or polls with a deadline).
"""
import errno
import hashlib
import socket
import threading

import botocore.exceptions
import pytest
import requests

from s3_server import FaultProxy, MotoServer, s3_client, tmpfs

BODY = bytes(range(256)) * 40          # 10,240 bytes


def error_code(excinfo):
    err = excinfo.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]


def presigned(proxy, key="dir/obj.bin"):
    """A presigned URL of plain/key (moto answers unsigned requests 403 even with
    auth off, and presigned ones 500 with auth on)."""
    return s3_client(proxy.endpoint).generate_presigned_url(
        "get_object", Params={"Bucket": "plain", "Key": key})


def raw_get(proxy, key="dir/obj.bin"):
    """A GET on a plain socket: (head, body bytes received before EOF, the error
    that ended the read or None)."""
    target = presigned(proxy, key).removeprefix(proxy.endpoint)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n\r\n".encode())
        data, error = b"", None
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError as e:
            error = e
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body, error


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        server.create_bucket("plain")
        server.put("plain", "dir/obj.bin", BODY)
        yield server


@pytest.fixture()
def proxy(moto):
    with FaultProxy(moto.endpoint) as p:
        yield p


@pytest.fixture()
def client(proxy):
    return s3_client(proxy.endpoint)


def test_upload_tree_put_etag_delete(moto, tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m"\n')
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(b"onnx")
    moto.create_bucket("tree")
    keys = moto.upload_tree("tree", "repo/", tmp_path)
    assert keys == ["repo/m/1/model.onnx", "repo/m/config.pbtxt"]
    listed = moto.admin().list_objects_v2(Bucket="tree", Prefix="repo/")["Contents"]
    assert sorted(o["Key"] for o in listed) == keys
    assert moto.etag("tree", "repo/m/1/model.onnx") == hashlib.md5(b"onnx").hexdigest()
    assert moto.put("tree", "x", b"new") == hashlib.md5(b"new").hexdigest()
    moto.delete("tree", "x")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        moto.admin().head_object(Bucket="tree", Key="x")
    assert error_code(e)[0] == 404


def test_proxy_forwards_every_request_unchanged(proxy, client):
    big = bytes(2 << 20)                # large enough for boto3's Expect: 100-continue
    client.put_object(Bucket="plain", Key="up/big.bin", Body=big)
    assert client.get_object(Bucket="plain", Key="up/big.bin")["Body"].read() == big
    assert client.head_object(Bucket="plain", Key="dir/obj.bin")["ContentLength"] == len(BODY)
    ranged = client.get_object(Bucket="plain", Key="dir/obj.bin", Range="bytes=300-309")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == BODY[300:310]
    listed = client.list_objects_v2(Bucket="plain", Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/obj.bin"]
    client.delete_object(Bucket="plain", Key="up/big.bin")
    # A presigned URL through plain requests, as well.
    assert requests.get(presigned(proxy), timeout=30).content == BODY

    methods = [(m, status) for m, _, status in proxy.log]
    assert methods == [("PUT", 200), ("GET", 200), ("HEAD", 200), ("GET", 206), ("GET", 200),
                       ("DELETE", 204), ("GET", 200)]
    assert proxy.requests() == 7
    assert proxy.requests("/plain/dir/obj.bin") == 3
    assert proxy.requests("list-type=2") == 1


def test_cut_sends_a_prefix_then_fin(moto, proxy, client):
    proxy.cut("/plain/dir/obj.bin", after_bytes=1000)
    head, body, error = raw_get(proxy)
    assert head.startswith("HTTP/1.1 200") and f"Content-Length: {len(BODY)}" in head
    assert body == BODY[:1000] and error is None
    # Used up: the next one is whole.
    assert client.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read() == BODY


def test_cut_through_boto3_and_with_reset(proxy, client):
    proxy.cut("obj.bin", after_bytes=0, method="GET")
    proxy.cut("obj.bin", after_bytes=10, rst=True)
    with pytest.raises((botocore.exceptions.IncompleteReadError,
                        botocore.exceptions.ResponseStreamingError)):
        client.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read()
    head, body, error = raw_get(proxy)
    assert isinstance(error, ConnectionResetError) and len(body) <= 10, (head, body)
    # A HEAD has no body to cut and uses nothing up; a listing does not match.
    client.head_object(Bucket="plain", Key="dir/obj.bin")
    client.list_objects_v2(Bucket="plain", Prefix="dir/")
    assert client.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read() == BODY


def test_corrupt_flips_the_middle_byte(proxy, client):
    # boto3 checks the CRC32 that it stored with the object: it sees the damage.
    proxy.corrupt("/plain/dir/obj.bin")
    with pytest.raises(botocore.exceptions.FlexibleChecksumError):
        client.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read()
    # mmserve will not: look at the bytes without that check.
    client = s3_client(proxy.endpoint, response_checksum_validation="when_required")
    proxy.corrupt("/plain/dir/obj.bin", times=2)
    for _ in range(2):
        got = client.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read()
        assert len(got) == len(BODY)
        assert [i for i in range(len(BODY)) if got[i] != BODY[i]] == [len(BODY) // 2]
    assert client.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read() == BODY
    # On a range, the middle of what came back.
    proxy.corrupt("obj.bin")
    got = client.get_object(Bucket="plain", Key="dir/obj.bin", Range="bytes=0-9")["Body"].read()
    assert got[5] == BODY[5] ^ 0xFF and got[:5] + got[6:] == BODY[:5] + BODY[6:10]


def test_status_answers_without_forwarding(proxy, client):
    proxy.status("/plain/dir/obj.bin", 503, times=2)
    proxy.status("list-type", 500, s3_code="InternalError")
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client.get_object(Bucket="plain", Key="dir/obj.bin")
        assert error_code(e) == (503, "SlowDown")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.list_objects_v2(Bucket="plain")
    assert error_code(e) == (500, "InternalError")
    assert client.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read() == BODY
    assert [status for _, _, status in proxy.log] == [503, 503, 500, 200]
    proxy.status("obj.bin", 404, method="HEAD")
    proxy.clear()
    client.head_object(Bucket="plain", Key="dir/obj.bin")


def test_stall_holds_the_rest_until_the_event(proxy, client):
    release = threading.Event()
    reached = proxy.stall("/plain/dir/obj.bin", after_bytes=100, event=release)
    result = {}

    def download():
        result["body"] = client.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read()

    t = threading.Thread(target=download)
    t.start()
    try:
        assert reached.wait(30), "the download never reached the stall"
        assert t.is_alive() and "body" not in result
        assert proxy.log == [("GET", "/plain/dir/obj.bin", 200)]
    finally:
        release.set()
        t.join(30)
    assert result["body"] == BODY


def test_down_refuses_connections_and_up_reopens_the_same_port(proxy, client):
    port = proxy.port
    proxy.down()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        client.head_object(Bucket="plain", Key="dir/obj.bin")
    proxy.up()
    assert proxy.port == port
    assert client.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read() == BODY


def test_upload_large_etags_and_ranges(moto, proxy, client):
    moto.create_bucket("large")
    multi = moto.upload_large("large", "multi.bin", 11 << 20, part_size=5 << 20)
    assert multi.etag.endswith("-3") and multi.size == 11 << 20
    single = moto.upload_large("large", "single.bin", 6 << 20, single_part=True)
    assert single.etag == single.md5
    data = multi.path.read_bytes()
    assert hashlib.md5(data).hexdigest() == multi.md5
    tail = client.get_object(Bucket="large", Key="multi.bin", Range=f"bytes={len(data) - 4096}-")
    assert tail["Body"].read() == data[-4096:]
    proxy.cut("multi.bin", after_bytes=7 << 20)
    with pytest.raises((botocore.exceptions.IncompleteReadError,
                        botocore.exceptions.ResponseStreamingError)):
        client.get_object(Bucket="large", Key="multi.bin")["Body"].read()
    whole = client.get_object(Bucket="large", Key="multi.bin")["Body"].read()
    assert hashlib.md5(whole).hexdigest() == multi.md5


def test_auth_off_accepts_any_key(proxy):
    anyone = s3_client(proxy.endpoint, "AKIANOBODY", "wrong")
    assert anyone.get_object(Bucket="plain", Key="dir/obj.bin")["Body"].read() == BODY


def test_auth_reader_revoke(tmp_path):
    with MotoServer(tmp_path) as moto, FaultProxy(moto.endpoint) as proxy:
        for bucket in ("mine", "other"):
            moto.create_bucket(bucket)
            moto.put(bucket, "m/config.pbtxt", b"cfg")
        key_id, secret = moto.make_reader(["mine"])
        moto.enable_auth()
        # Signed for the proxy's Host, checked by moto: the Host went through unchanged.
        reader = s3_client(proxy.endpoint, key_id, secret)
        assert reader.get_object(Bucket="mine", Key="m/config.pbtxt")["Body"].read() == b"cfg"
        assert reader.list_objects_v2(Bucket="mine", Prefix="m/")["KeyCount"] == 1

        cases = [(reader, "other", "AccessDenied"),
                 (s3_client(proxy.endpoint, "AKIANOBODY", secret), "mine", "InvalidAccessKeyId"),
                 (s3_client(proxy.endpoint, key_id, "wrong"), "mine", "SignatureDoesNotMatch")]
        for c, bucket, code in cases:
            with pytest.raises(botocore.exceptions.ClientError) as e:
                c.get_object(Bucket=bucket, Key="m/config.pbtxt")
            assert error_code(e) == (403, code)
        # The admin still does everything, and can add readers after auth is on.
        moto.put("other", "late", b"x")
        late_id, late_secret = moto.make_reader(["other"])
        late = s3_client(moto.endpoint, late_id, late_secret)
        assert late.get_object(Bucket="other", Key="late")["Body"].read() == b"x"

        moto.revoke(key_id)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            reader.get_object(Bucket="mine", Key="m/config.pbtxt")
        assert error_code(e)[0] == 403


def test_restart_keeps_the_port_and_loses_the_state(tmp_path):
    with MotoServer(tmp_path) as moto:
        moto.create_bucket("gone")
        moto.enable_auth()
        port = moto.port
        moto.restart()
        assert moto.port == port and not moto.auth_enabled
        # Auth is off again (any key) and the bucket is gone.
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3_client(moto.endpoint, "AKIANOBODY", "x").head_bucket(Bucket="gone")
        assert error_code(e)[0] == 404
        proc = moto.proc
    assert proc.poll() is not None and moto.proc is None
    # Behind the proxy, a store that is gone answers 502.
    with FaultProxy(moto.endpoint) as proxy:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3_client(proxy.endpoint).head_bucket(Bucket="gone")
        assert error_code(e)[0] == 502
        assert proxy.log == [("HEAD", "/gone", 502)]


def test_tmpfs_fills_up_with_enospc(tmp_path):
    size = 1 << 20
    with tmpfs(tmp_path / "small", size) as mnt:
        written = 0
        with pytest.raises(OSError) as e, open(mnt / "fill", "wb", buffering=0) as f:
            while True:
                written += f.write(b"\0" * 65536)
        assert e.value.errno == errno.ENOSPC
        assert written <= size
    assert not (tmp_path / "small" / "fill").exists()
