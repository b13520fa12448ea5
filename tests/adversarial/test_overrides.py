"""Hostile suite, issue 17 defects 2 and 6: config overrides from tenants are
untrusted input. A user tenant loads its own models with hostile `config`
overrides over HTTP and gRPC; every number is bounded (400 naming field,
value and bound), the server's caps are flags (400 naming the flag), the
mmserve block is the admins' (403 naming the fields), and the server stays
alive and serving throughout. Bounds and caps: docs/model_config.md."""
import json

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import Server
from hostile import KEY_A, KEY_OPS, bearer, copy_model, grpc_auth, write_tenants

KEY_Q = "team-q-key-0123456789abcdef"

# The server's caps for this suite (lower than the defaults, 16 and 64, to
# show the flags are what decides).
MAX_INSTANCES = 4
MAX_THREADS = 16


def add_to_config(model_dir, text):
    config = model_dir / "config.pbtxt"
    config.write_text(config.read_text() + text)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("overrides")
    repo_a, repo_q = root / "a", root / "q"
    repo_a.mkdir()
    repo_q.mkdir()
    copy_model("add_sub", repo_a)
    copy_model("mlp_classifier", repo_a, "mlp")
    add_to_config(copy_model("add_sub", repo_a, "keep"),
                  "mmserve { memory_footprint_bytes: 123456 }\n")
    # Repository configs over a bound and over a cap: listed UNAVAILABLE.
    add_to_config(copy_model("mlp_classifier", repo_a, "bad_levels"),
                  "dynamic_batching { priority_levels: 5000000 }\n")
    add_to_config(copy_model("add_sub", repo_a, "bad_threads"),
                  'instance_group [ { count: 2 } ]\n'
                  'parameters { key: "intra_op_thread_count" value { string_value: "100" } }\n')
    copy_model("add_sub", repo_q, "q_model")
    path = write_tenants(root / "tenants.yaml", [
        {"id": "team-a", "keys": [KEY_A], "repositories": [repo_a]},
        {"id": "team-q", "keys": [KEY_Q], "repositories": [repo_q],
         "quotas": {"memory_bytes": "1MiB"}},
        {"id": "ops", "keys": [KEY_OPS], "role": "admin"},
    ])
    s = Server([repo_a, repo_q], "--tenants", path, "--model-control-mode", "explicit",
               "--load-model", "add_sub", "--load-model", "bad_levels",
               "--load-model", "bad_threads",
               "--max-instances-per-model", MAX_INSTANCES,
               "--max-threads-per-model", MAX_THREADS).start()
    yield s
    assert s.stop() == 0, s.text()[-5000:]


def http_load(s, key, model, config):
    """Loads `model` with the JSON override `config` (a dict or raw text)
    through tritonclient.http; returns (status, message)."""
    client = httpclient.InferenceServerClient(s.url)
    text = config if isinstance(config, str) else json.dumps(config)
    try:
        client.load_model(model, headers=bearer(key), config=text)
        return "200", ""
    except InferenceServerException as e:
        return e.status(), e.message()
    finally:
        client.close()


def grpc_load(s, key, model, config):
    client = grpcclient.InferenceServerClient(s.grpc_url)
    text = config if isinstance(config, str) else json.dumps(config)
    try:
        client.load_model(model, headers=grpc_auth(key), config=text)
        return "OK", ""
    except InferenceServerException as e:
        return e.status(), e.message()
    finally:
        client.close()


def load_both(s, key, model, config):
    """[(transport, status, message)] for one override over HTTP then gRPC."""
    return [("http",) + http_load(s, key, model, config),
            ("grpc",) + grpc_load(s, key, model, config)]


def expect_refused(s, key, model, config, http_status, grpc_status, *wants):
    for transport, status, message in load_both(s, key, model, config):
        want_status = http_status if transport == "http" else grpc_status
        assert status == want_status, (transport, status, message)
        for want in wants:
            assert want in message, (transport, want, message)
    assert_serving(s)


def infer_add_sub(s, key=KEY_A, model="add_sub"):
    body = {"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                       {"name": "INPUT1", "shape": [4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}
    r = requests.post(f"{s.base}/v2/models/{model}/infer", headers=bearer(key), json=body,
                      timeout=60)
    return r


def assert_serving(s):
    """The server is alive, ready and answers an inference (HTTP and gRPC)."""
    assert s.proc.poll() is None, s.text()[-3000:]
    assert requests.get(s.base + "/v2/health/ready", timeout=10).status_code == 200
    r = infer_add_sub(s)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [2, 3, 4, 5]
    client = grpcclient.InferenceServerClient(s.grpc_url)
    try:
        a = np.arange(4, dtype=np.float32)
        inputs = [grpcclient.InferInput("INPUT0", [4], "FP32"),
                  grpcclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(a)
        out = client.infer("add_sub", inputs, headers=grpc_auth(KEY_A))
        np.testing.assert_array_equal(out.as_numpy("OUTPUT0"), a + a)
    finally:
        client.close()


def mlp_override(**dynamic_batching):
    return {"platform": "onnxruntime_onnx", "max_batch_size": 64,
            "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [16]}],
            "output": [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [10]}],
            "dynamic_batching": dynamic_batching}


def infer_mlp(s, priority=None):
    body = {"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32",
                        "data": [0.5] * 16}]}
    if priority is not None:
        body["parameters"] = {"priority": priority}
    return requests.post(f"{s.base}/v2/models/mlp/infer", headers=bearer(KEY_A), json=body,
                         timeout=60)


# ------------------------------------------------------- defect 2, as found

def test_priority_levels_4294967295_is_400_not_bad_alloc(srv):
    expect_refused(srv, KEY_A, "mlp",
                   mlp_override(priority_levels=4294967295, default_priority_level=1),
                   "400", "StatusCode.INVALID_ARGUMENT",
                   "model 'mlp': the 'config' parameter",
                   "dynamic_batching.priority_levels is 4294967295; expected at most 1000")


def test_truncating_levels_and_default_level_are_400_and_inference_still_works(srv):
    expect_refused(srv, KEY_A, "mlp",
                   mlp_override(priority_levels=4294967298, default_priority_level=4000000000),
                   "400", "StatusCode.INVALID_ARGUMENT",
                   "dynamic_batching.priority_levels is 4294967298; expected at most 1000")
    # The first inference (which used to segfault) answers.
    r = infer_mlp(srv)
    assert r.status_code == 200, r.text
    assert len(r.json()["outputs"][0]["data"]) == 10


def test_five_million_levels_are_400(srv):
    expect_refused(srv, KEY_A, "mlp",
                   mlp_override(priority_levels=5000000, default_priority_level=1),
                   "400", "StatusCode.INVALID_ARGUMENT",
                   "priority_levels is 5000000; expected at most 1000")


def test_levels_at_the_bound_load_and_a_priority_past_them_is_400(srv):
    config = mlp_override(priority_levels=1000, default_priority_level=1000)
    assert http_load(srv, KEY_A, "mlp", config) == ("200", "")
    for priority in (1, 1000, 0):
        r = infer_mlp(srv, priority)
        assert r.status_code == 200, (priority, r.text)
    r = infer_mlp(srv, 1001)
    assert r.status_code == 400, r.text
    assert "priority 1001 is out of range" in r.json()["error"]
    assert "1 (highest) to 1000" in r.json()["error"]
    r = infer_mlp(srv, 4294967298)
    assert r.status_code == 400, r.text
    # Back to config.pbtxt.
    client = httpclient.InferenceServerClient(srv.url)
    try:
        client.load_model("mlp", headers=bearer(KEY_A))
    finally:
        client.close()
    assert infer_mlp(srv).status_code == 200
    assert_serving(srv)


# ------------------------------------------------------- defect 6, as found

def test_footprint_and_pinned_from_a_user_tenant_are_403(srv):
    # team-q has a 1 MiB memory quota; declaring a 1-byte pinned footprint
    # would pass it whatever the model holds.
    override = {"mmserve": {"memory_footprint_bytes": 1, "pinned": True}}
    expect_refused(srv, KEY_Q, "q_model", override, "403", "StatusCode.PERMISSION_DENIED",
                   "tenant 'team-q' may not set mmserve.memory_footprint_bytes, mmserve.pinned",
                   "needs the admin role")


def test_200_intra_op_threads_times_4_instances_is_400_naming_the_cap(srv):
    override = {"platform": "onnxruntime_onnx", "instance_group": [{"count": 4}],
                "parameters": {"intra_op_thread_count": {"string_value": "200"}}}
    expect_refused(srv, KEY_A, "add_sub", override, "400", "StatusCode.INVALID_ARGUMENT",
                   "4 instance(s) x (intra_op_thread_count 200 + inter_op_thread_count 1 "
                   "(unset)) = 804 threads",
                   f"at most {MAX_THREADS} per model (--max-threads-per-model)")


def test_warmup_count_4294967295_is_400(srv):
    override = {"platform": "onnxruntime_onnx",
                "model_warmup": [{"name": "w", "batch_size": 1, "count": 4294967295,
                                  "inputs": {"INPUT0": {"data_type": "TYPE_FP32", "dims": [4],
                                                        "zero_data": True},
                                             "INPUT1": {"data_type": "TYPE_FP32", "dims": [4],
                                                        "zero_data": True}}}]}
    expect_refused(srv, KEY_A, "add_sub", override, "400", "StatusCode.INVALID_ARGUMENT",
                   "model_warmup[0].count is 4294967295; expected at most 1000")


# ------------------------------------------------------------ the class

@pytest.mark.parametrize("override, want", [
    ({"max_batch_size": 2097152}, "max_batch_size is 2097152; expected at most 1048576"),
    (mlp_override(max_queue_delay_microseconds=61000000),
     "max_queue_delay_microseconds is 61000000; expected at most 60000000"),
    (mlp_override(default_queue_policy={"max_queue_size": 4294967295}),
     "default_queue_policy.max_queue_size is 4294967295; expected at most 1000000"),
    (mlp_override(default_queue_policy={"default_timeout_microseconds": "18446744073709551615"}),
     "default_timeout_microseconds is 18446744073709551615; expected at most 3600000000"),
    (mlp_override(preferred_batch_size=[1] * 65),
     "preferred_batch_size has 65 entries; expected at most 64"),
    ({"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4294967296]}]},
     "input 'x' dims[0] is 4294967296"),
    ({"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [1] * 65}]},
     "input 'x' dims has 65 dims; expected at most 64"),
    ({"version_policy": {"latest": {"num_versions": 4294967295}}},
     "version_policy.latest.num_versions is 4294967295; expected at most 100"),
    ({"instance_group": [{"count": 2147483647}]},
     "instance_group[0].count is 2147483647; expected at most 1024"),
    ({"instance_group": [{"count": 1}] * 65}, "instance_group has 65 entries; expected at most 64"),
    ({"parameters": {"inter_op_thread_count": {"string_value": "99999"}}},
     "parameters['inter_op_thread_count'] is '99999'; expected an integer from 0"),
    ({"model_warmup": [{"name": "w", "batch_size": 1, "count": 600},
                       {"name": "v", "batch_size": 1, "count": 600}]},
     "model_warmup runs 1200 times or more per instance"),
    (mlp_override() | {"model_warmup": [{"name": "big", "batch_size": 64, "inputs": {
        "input": {"data_type": "TYPE_FP32", "dims": [1048576], "random_data": True}}}]},
     "model_warmup[0] needs more than 67108864 bytes of input data"),
])
def test_other_numeric_fields_are_bounded_over_both_transports(srv, override, want):
    model = "mlp" if override.get("max_batch_size", 0) > 0 else "add_sub"
    expect_refused(srv, KEY_A, model, override, "400", "StatusCode.INVALID_ARGUMENT",
                   f"model '{model}': the 'config' parameter", want)


def test_the_instance_cap_is_the_flag(srv):
    base = {"platform": "onnxruntime_onnx"}
    expect_refused(srv, KEY_A, "add_sub", base | {"instance_group": [{"count": 3}, {"count": 2}]},
                   "400", "StatusCode.INVALID_ARGUMENT",
                   f"instance_group asks for 5 instances; this server allows at most "
                   f"{MAX_INSTANCES} per model (--max-instances-per-model)")
    # At both caps exactly: 4 x (3 + 1) = 16 threads loads and serves.
    at_caps = base | {"instance_group": [{"count": 4}],
                      "parameters": {"intra_op_thread_count": {"string_value": "3"}}}
    assert http_load(srv, KEY_A, "add_sub", at_caps) == ("200", "")
    assert_serving(srv)
    # One more thread each is over.
    over = base | {"instance_group": [{"count": 4}],
                   "parameters": {"intra_op_thread_count": {"string_value": "4"}}}
    expect_refused(srv, KEY_A, "add_sub", over, "400", "StatusCode.INVALID_ARGUMENT",
                   "= 20 threads", "(--max-threads-per-model)")


@pytest.mark.parametrize("mmserve, names", [
    ({"tenant": "team-b"}, "mmserve.tenant"),
    ({"weight": 1000}, "mmserve.weight"),
    ({"isolation": "IN_PROCESS"}, "mmserve.isolation"),
    ({"executionTimeoutMs": 0}, "mmserve.execution_timeout_ms"),  # JSON name, default value
    ({"memory_limit_bytes": 0}, "mmserve.memory_limit_bytes"),
    ({"pinned": False}, "mmserve.pinned"),
    ({}, "may not set mmserve in"),
])
def test_every_mmserve_field_is_admin_only_in_any_spelling(srv, mmserve, names):
    override = {"platform": "onnxruntime_onnx", "mmserve": mmserve}
    expect_refused(srv, KEY_A, "add_sub", override, "403", "StatusCode.PERMISSION_DENIED",
                   names, "tenant 'team-a'")


def test_an_admin_may_set_the_restricted_fields_within_their_bounds(srv):
    override = {"platform": "onnxruntime_onnx",
                "mmserve": {"memory_footprint_bytes": 4096, "pinned": True}}
    assert http_load(srv, KEY_OPS, "q_model", override) == ("200", "")
    assert grpc_load(srv, KEY_OPS, "q_model", override) == ("OK", "")
    assert infer_add_sub(srv, KEY_Q, "q_model").status_code == 200
    # Bounds hold for admins too.
    over = {"platform": "onnxruntime_onnx", "mmserve": {"execution_timeout_ms": 3600001}}
    for transport, status, message in load_both(srv, KEY_OPS, "q_model", over):
        assert status in ("400", "StatusCode.INVALID_ARGUMENT"), (transport, status, message)
        assert "mmserve.execution_timeout_ms is 3600001; expected at most 3600000" in message
    assert_serving(srv)


def test_a_user_override_keeps_the_repositorys_mmserve_block(srv):
    override = {"platform": "onnxruntime_onnx"}
    assert http_load(srv, KEY_A, "keep", override) == ("200", "")
    assert infer_add_sub(srv, KEY_A, "keep").status_code == 200
    metrics = requests.get(srv.metrics_url, timeout=10).text
    lines = [line for line in metrics.splitlines()
             if line.startswith("mmserve_model_memory_bytes") and 'model="keep"' in line]
    assert lines and all(line.endswith(" 123456") for line in lines), lines


def test_repository_configs_out_of_bounds_are_unavailable_with_the_reason(srv):
    r = requests.post(srv.base + "/v2/repository/index", headers=bearer(KEY_A), json={},
                      timeout=10)
    assert r.status_code == 200, r.text
    index = {m["name"]: m for m in r.json()}
    assert index["bad_levels"]["state"] == "UNAVAILABLE", index["bad_levels"]
    assert "dynamic_batching.priority_levels is 5000000; expected at most 1000" in \
        index["bad_levels"]["reason"]
    assert index["bad_threads"]["state"] == "UNAVAILABLE", index["bad_threads"]
    assert "(--max-threads-per-model)" in index["bad_threads"]["reason"]
    # Loading them again says the same, and the rest keeps serving.
    client = httpclient.InferenceServerClient(srv.url)
    try:
        for model, want in (("bad_levels", "priority_levels is 5000000"),
                            ("bad_threads", "(--max-threads-per-model)")):
            with pytest.raises(InferenceServerException) as e:
                client.load_model(model, headers=bearer(KEY_A))
            assert e.value.status() == "400", e.value
            assert want in e.value.message()
    finally:
        client.close()
    assert_serving(srv)


def test_garbage_and_oversized_overrides_are_400(srv):
    for config in ("{", "[]", '{"max_batch_size": "lots"}', '{"unknown_field": 1}',
                   '{"max_batch_size": 99999999999}', '{"input": [{"dims": [1e999]}]}'):
        for transport, status, message in load_both(srv, KEY_A, "add_sub", config):
            assert status in ("400", "StatusCode.INVALID_ARGUMENT"), (transport, status, message)
            assert "the 'config' parameter" in message, (transport, message)
    # Over 4 MiB (HTTP: gRPC's own message limit is 4 MiB).
    status, message = http_load(srv, KEY_A, "add_sub", " " * (4 * 1024 * 1024 + 1))
    assert status == "400" and "bytes; expected at most 4194304" in message, (status, message)
    assert_serving(srv)
