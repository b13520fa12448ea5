"""Hostile clients of system shared memory (issue 17, defects 1 and 4).

Defect 1: inference resolved `shared_memory_region` for any tenant, so team-a
read and overwrote a region the admin registered. Class: a region is owned by
the tenant that registered it; another tenant's region answers exactly as one
that does not exist, for inference (inputs and outputs), status and
unregister, over HTTP and gRPC; names do not collide; regions per tenant are
bounded.

Defect 4: a client that truncates its object after registering it killed the
server with SIGBUS. Class: a region that shrinks under a request fails that
request with a clear error, reading (input) or writing (output), in-process
and in a worker process, over HTTP and gRPC; the server serves the next one.
"""
import os

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from conftest import Server
from hostile import KEY_A, KEY_B, KEY_OPS, bearer, copy_model, grpc_auth, write_tenants

MAX_REGIONS = 4
PAGE = os.sysconf("SC_PAGE_SIZE")
A = np.arange(4, dtype=np.float32)
B = np.full(4, 10, dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("shm")
    repo_a, repo_b = root / "a", root / "b"
    repo_a.mkdir()
    repo_b.mkdir()
    copy_model("add_sub", repo_a)
    worker = copy_model("add_sub", repo_a, "add_sub_w")  # the same model in a worker process
    (worker / "config.pbtxt").write_text((worker / "config.pbtxt").read_text() +
                                         "mmserve { isolation: PROCESS }\n")
    copy_model("add_sub", repo_b, "add_sub_b")
    path = write_tenants(root / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]},
        {"id": "team-b", "keys": [KEY_B], "repositories": [repo_b]},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([repo_a, repo_b], "--tenants", path,
               "--max-shm-regions-per-tenant", MAX_REGIONS).start()
    yield s
    code = s.stop()
    assert code == 0, s.text()[-3000:]


@pytest.fixture()
def objects():
    """Makes POSIX shared memory objects (tritonclient's helper); destroys them after."""
    made = []

    def make(name, size):
        key = f"/mmserve_adv_{os.getpid()}_{name}"
        handle = shm.create_shared_memory_region(name, key, size)
        made.append(handle)
        return key, handle

    yield make
    for handle in made:
        shm.destroy_shared_memory_region(handle)


class Client:
    """One tenant's client over one transport, with the tenant's key on every call."""

    def __init__(self, server, kind, key):
        self.kind = kind
        if kind == "http":
            self.c = httpclient.InferenceServerClient(server.url)
            self.mod = httpclient
            self.headers = bearer(key)
        else:
            self.c = grpcclient.InferenceServerClient(server.grpc_url)
            self.mod = grpcclient
            self.headers = grpc_auth(key)

    def register(self, name, key, size, offset=0):
        self.c.register_system_shared_memory(name, key, size, offset=offset, headers=self.headers)

    def unregister(self, name=""):
        self.c.unregister_system_shared_memory(name, headers=self.headers)

    def names(self):
        status = self.c.get_system_shared_memory_status(headers=self.headers)
        if self.kind == "http":
            return sorted(r["name"] for r in status)
        return sorted(status.regions)

    def status(self, name):
        return self.c.get_system_shared_memory_status(name, headers=self.headers)

    def infer(self, model, in_region=None, out_region=None):
        """add_sub: INPUT0 from `in_region` (16 bytes) or A, INPUT1 = B, OUTPUT0
        into `out_region` (16 bytes) if given."""
        m = self.mod
        inputs = [m.InferInput("INPUT0", [4], "FP32"), m.InferInput("INPUT1", [4], "FP32")]
        if in_region:
            inputs[0].set_shared_memory(in_region, 16)
        else:
            inputs[0].set_data_from_numpy(A)
        inputs[1].set_data_from_numpy(B)
        outputs = None
        if out_region:
            outputs = [m.InferRequestedOutput("OUTPUT0")]
            outputs[0].set_shared_memory(out_region, 16)
        return self.c.infer(model, inputs, outputs=outputs, headers=self.headers)

    def close(self):
        self.c.close()


@pytest.fixture(params=["http", "grpc"])
def kind(request, server):
    yield request.param
    for key in (KEY_A, KEY_B, KEY_OPS):  # every tenant's regions, by its own hand
        c = Client(server, request.param, key)
        c.unregister()
        c.close()


def refused(fn):
    with pytest.raises(InferenceServerException) as e:
        fn()
    return e.value


def code(err):
    """HTTP status or gRPC code of an error, as one comparable string."""
    return str(err.status())


def assert_unknown_region(err, name, kind):
    if kind == "http":
        assert code(err) == "404", (err.status(), err.message())
    else:
        assert code(err) == "StatusCode.NOT_FOUND", (err.status(), err.message())
    assert f"no shared memory region named '{name}' is registered" in err.message(), err.message()


def same_shape(err, other, name, other_name):
    """Two refusals read the same once the region names are swapped."""
    assert code(err) == code(other)
    assert err.message().replace(name, "<r>") == other.message().replace(other_name, "<r>"), \
        (err.message(), other.message())


def assert_serves(server, kind):
    """The server is up and answers team-a's next request correctly."""
    assert requests.get(server.base + "/v2/health/live", timeout=10).status_code == 200
    c = Client(server, kind, KEY_A)
    try:
        np.testing.assert_array_equal(c.infer("add_sub").as_numpy("OUTPUT0"), A + B)
    finally:
        c.close()


# ------------------------------------------------------------------ defect 1

def test_a_tenant_cannot_name_the_admins_region(server, kind, objects):
    key, handle = objects("secret", 32)
    secret = np.array([7, 7, 7, 7, 9, 9, 9, 9], dtype=np.float32)
    shm.set_shared_memory_region(handle, [secret])
    ops, a = Client(server, kind, KEY_OPS), Client(server, kind, KEY_A)
    ops.register("secret", key, 32)
    try:
        # As an input of its own model: refused as an unknown region...
        err = refused(lambda: a.infer("add_sub", in_region="secret"))
        assert_unknown_region(err, "secret", kind)
        # ... exactly as a name nobody registered.
        same_shape(err, refused(lambda: a.infer("add_sub", in_region="nosuch")), "secret",
                   "nosuch")
        # As an output: refused, and the region's bytes are unchanged.
        err = refused(lambda: a.infer("add_sub", out_region="secret"))
        assert_unknown_region(err, "secret", kind)
        np.testing.assert_array_equal(shm.get_contents_as_numpy(handle, np.float32, [8]), secret)
        # The owner itself still uses it.
        out = ops.infer("add_sub", in_region="secret").as_numpy("OUTPUT0")
        np.testing.assert_array_equal(out, secret[:4] + B)
    finally:
        ops.close()
        a.close()


def test_status_and_unregister_see_only_the_owners_regions(server, kind, objects):
    key_a, _ = objects("ra", 16)
    ops, a, b = (Client(server, kind, k) for k in (KEY_OPS, KEY_A, KEY_B))
    try:
        a.register("only-a", key_a, 16)
        assert a.names() == ["only-a"]
        assert b.names() == [] and ops.names() == []  # admins too: their own only
        for c in (b, ops):
            # Status and unregister by name: exactly as a region that does not exist.
            err = refused(lambda: c.status("only-a"))
            assert_unknown_region(err, "only-a", kind)
            same_shape(err, refused(lambda: c.status("nosuch")), "only-a", "nosuch")
            err = refused(lambda: c.unregister("only-a"))
            assert_unknown_region(err, "only-a", kind)
            same_shape(err, refused(lambda: c.unregister("nosuch")), "only-a", "nosuch")
            c.unregister()  # "all" is all of the caller's own
        assert a.names() == ["only-a"]
        # An admin does not resolve another tenant's region in inference either.
        assert_unknown_region(refused(lambda: ops.infer("add_sub", in_region="only-a")), "only-a",
                              kind)
    finally:
        for c in (ops, a, b):
            c.close()


def test_names_do_not_collide_across_tenants(server, kind, objects):
    key_a, handle_a = objects("na", 16)
    key_b, handle_b = objects("nb", 16)
    mine_a = np.full(4, 1, np.float32)
    mine_b = np.full(4, 2, np.float32)
    shm.set_shared_memory_region(handle_a, [mine_a])
    shm.set_shared_memory_region(handle_b, [mine_b])
    a, b = Client(server, kind, KEY_A), Client(server, kind, KEY_B)
    try:
        a.register("r", key_a, 16)
        b.register("r", key_b, 16)  # the same name: no ALREADY_EXISTS, no squatting
        np.testing.assert_array_equal(a.infer("add_sub", in_region="r").as_numpy("OUTPUT0"),
                                      mine_a + B)
        np.testing.assert_array_equal(b.infer("add_sub_b", in_region="r").as_numpy("OUTPUT0"),
                                      mine_b + B)
        # Outputs land in the caller's own region.
        b.infer("add_sub_b", out_region="r")
        np.testing.assert_array_equal(shm.get_contents_as_numpy(handle_b, np.float32, [4]), A + B)
        np.testing.assert_array_equal(shm.get_contents_as_numpy(handle_a, np.float32, [4]), mine_a)
        b.unregister("r")
        assert a.names() == ["r"] and b.names() == []
    finally:
        a.close()
        b.close()


def test_regions_per_tenant_are_bounded(server, kind, objects):
    key, _ = objects("many", 16)
    a, b = Client(server, kind, KEY_A), Client(server, kind, KEY_B)
    try:
        for i in range(MAX_REGIONS):
            a.register(f"r{i}", key, 16)
        err = refused(lambda: a.register("one-more", key, 16))
        assert code(err) == ("429" if kind == "http" else "StatusCode.RESOURCE_EXHAUSTED"), \
            (err.status(), err.message())
        assert "--max-shm-regions-per-tenant" in err.message(), err.message()
        b.register("r0", key, 16)  # another tenant's count is its own
        a.unregister("r0")
        a.register("one-more", key, 16)
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------ defect 4

def truncate(key, size):
    """What a hostile client does to its own object after registering it."""
    fd = os.open("/dev/shm" + key, os.O_RDWR)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


@pytest.mark.parametrize("model", ["add_sub", "add_sub_w"])  # in-process, in a worker
def test_a_truncated_input_object_fails_the_request_not_the_server(server, kind, objects, model):
    key, handle = objects(f"tin_{model}", 2 * PAGE)
    shm.set_shared_memory_region(handle, [A], offset=PAGE)
    a = Client(server, kind, KEY_A)
    try:
        a.register("in", key, 16, offset=PAGE)  # on the object's second page
        np.testing.assert_array_equal(a.infer(model, in_region="in").as_numpy("OUTPUT0"), A + B)
        truncate(key, PAGE // 2)  # (this process does not touch its mapping again)
        err = refused(lambda: a.infer(model, in_region="in"))
        assert code(err) == ("400" if kind == "http" else "StatusCode.INVALID_ARGUMENT"), \
            (err.status(), err.message())
        for words in ("input 'INPUT0'", "shared memory region 'in'", f"key '{key}'",
                      "became unreadable", "shrank"):
            assert words in err.message(), (words, err.message())
        assert_serves(server, kind)
    finally:
        a.close()


@pytest.mark.parametrize("model", ["add_sub", "add_sub_w"])
def test_a_truncated_output_object_fails_the_request_not_the_server(server, kind, objects, model):
    key, _ = objects(f"tout_{model}", 2 * PAGE)
    a = Client(server, kind, KEY_A)
    try:
        a.register("out", key, 16, offset=PAGE)
        truncate(key, 0)
        err = refused(lambda: a.infer(model, out_region="out"))
        assert code(err) == ("400" if kind == "http" else "StatusCode.INVALID_ARGUMENT"), \
            (err.status(), err.message())
        for words in ("output 'OUTPUT0'", "shared memory region 'out'", "became unwritable"):
            assert words in err.message(), (words, err.message())
        assert_serves(server, kind)
    finally:
        a.close()


def test_a_region_shrunk_then_grown_back_serves_again(server, objects):
    """Truncated to nothing, then grown back to its size: the registration
    still stands, and the region reads as the object now is (zeros)."""
    key, _ = objects("regrow", 2 * PAGE)
    a = Client(server, "http", KEY_A)
    try:
        a.register("g", key, 16, offset=PAGE)
        truncate(key, 0)
        assert "became unreadable" in refused(lambda: a.infer("add_sub", in_region="g")).message()
        truncate(key, 2 * PAGE)
        np.testing.assert_array_equal(a.infer("add_sub", in_region="g").as_numpy("OUTPUT0"), B)
    finally:
        a.close()
