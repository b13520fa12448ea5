"""ONNX backend node test cases (Debian's libonnx-testdata) run through the server.

Every case under /usr/share/libonnx-testdata/data/node becomes one model of a
temporary repository (no config.pbtxt: the server auto-completes it from the
ONNX file). One server loads them all; each READY model is fed every
test_data_set over HTTP with tritonclient (binary tensors) and its outputs are
compared with the expected ones using the ONNX backend-test tolerance.

Each case is classified:
  pass             every data set matched
  fail             the server answered but a value, shape or datatype differs
  error            the server answered an inference request with an error
  not_loadable     the model is UNAVAILABLE: ONNX Runtime cannot run it
  not_expressible  an input or output is not a tensor KServe v2 can carry
                   (sequence, optional, map, complex)

The report goes to build/test-logs/onnx_conformance.json. See docs/conformance.md.
"""
import concurrent.futures
import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, numpy_helper  # noqa: E402

import tritonclient.http as httpclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from conftest import ROOT, Server  # noqa: E402

NODE_DIR = Path(os.environ.get("ONNX_NODE_TESTDATA", "/usr/share/libonnx-testdata/data/node"))
REPORT = ROOT / "build" / "test-logs" / "onnx_conformance.json"

# Measured with ONNX Runtime 1.30.0 and libonnx-testdata 1.12.0: 860 of 932
# cases pass. The floor sits 2% below so that a regression in the server's
# tensor handling fails the test while a small ONNX Runtime drift does not.
PASS_FLOOR = 843

# Failures and errors investigated and found not to be the server's doing
# (docs/conformance.md has the details). They are annotated in the report so
# that a new, unexplained one stands out; they do not change the counts.
KNOWN_CAUSES = [
    (r"test_bernoulli.*|test_training_dropout.*",
     "random op: the expected output came from numpy's RNG, ONNX Runtime draws others"),
    (r"test_(cast|castlike)_FLOAT_to_STRING.*",
     "ONNX Runtime prints floats with more digits than numpy's shortest repr (0.60484552 vs 0.6048455)"),
    (r"test_cast_FLOAT_to_BFLOAT16",
     "test data 1.12 truncates FP32 to BF16; ONNX Runtime rounds to nearest even (the server's bytes equal that)"),
    (r"test_castlike_(BFLOAT16_to_FLOAT|FLOAT_to_BFLOAT16).*",
     "test data 1.12 feeds 'like' with shape [1] while the model declares [3,4]; the 400 is right"),
    (r"test_(dft|stft).*",
     "FP32 FFT round-off: |diff| <= 3.5e-4 on outputs up to 1.9e3, where the float64 reference has exact zeros"),
    (r"test_maxunpool_export_with_output_shape",
     "ONNX Runtime scatters the indices into output_shape, ONNX into the inferred shape (ORT excludes this test too)"),
    (r"test_resize_downsample_scales_(linear|cubic)_align_corners",
     "ONNX Runtime's align_corners downsampling differs from the ONNX reference (ORT excludes these tests too)"),
]

RTOL, ATOL = 1e-3, 1e-7  # onnx.backend.test's defaults
CLIENT_THREADS = 4
REQUEST_TIMEOUT_S = 120.0

# ONNX element type -> KServe v2 datatype. Types missing here (complex,
# float8, int4, ...) cannot be carried by KServe v2.
ONNX_TO_KSERVE = {
    TensorProto.BOOL: "BOOL",
    TensorProto.UINT8: "UINT8", TensorProto.UINT16: "UINT16",
    TensorProto.UINT32: "UINT32", TensorProto.UINT64: "UINT64",
    TensorProto.INT8: "INT8", TensorProto.INT16: "INT16",
    TensorProto.INT32: "INT32", TensorProto.INT64: "INT64",
    TensorProto.FLOAT16: "FP16", TensorProto.FLOAT: "FP32", TensorProto.DOUBLE: "FP64",
    TensorProto.BFLOAT16: "BF16", TensorProto.STRING: "BYTES",
}


class NotExpressible(Exception):
    pass


def _bfloat16():
    import ml_dtypes
    return ml_dtypes.bfloat16


def kserve_datatype(arr):
    """The KServe v2 datatype of a numpy array (our own mapping)."""
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if arr.dtype == np.bool_:
        return "BOOL"
    if kind == "u" and size in (1, 2, 4, 8):
        return f"UINT{size * 8}"
    if kind == "i" and size in (1, 2, 4, 8):
        return f"INT{size * 8}"
    if kind == "f" and size in (2, 4, 8):
        return {2: "FP16", 4: "FP32", 8: "FP64"}[size]
    if kind in ("O", "U", "S"):
        return "BYTES"
    if arr.dtype.name == "bfloat16":
        return "BF16"
    raise NotExpressible(f"numpy dtype {arr.dtype} has no KServe v2 datatype")


def load_tensor(path, declared=None):
    """A TensorProto file as numpy; BF16 as ml_dtypes.bfloat16, strings as bytes.

    `declared` is the ONNX element type the model declares for this tensor.
    The 1.12 test data stores BFLOAT16 tensors as UINT16 bit patterns (numpy
    had no bfloat16 then), so a UINT16 file for a BFLOAT16 tensor is
    reinterpreted.
    """
    proto = onnx.load_tensor(str(path))
    if proto.data_type not in ONNX_TO_KSERVE:
        raise NotExpressible(f"{path.name}: element type "
                             f"{TensorProto.DataType.Name(proto.data_type)}")
    arr = numpy_helper.to_array(proto)
    bf16 = proto.data_type == TensorProto.BFLOAT16 or (
        declared == TensorProto.BFLOAT16 and proto.data_type == TensorProto.UINT16)
    if bf16 and arr.dtype.name != "bfloat16":
        arr = arr.astype(np.uint16).view(_bfloat16())
    if proto.data_type == TensorProto.STRING:
        flat = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in arr.ravel()]
        arr = np.array(flat, dtype=object).reshape(arr.shape)
    return arr


def tensor_io(model):
    """([(name, elem type)] of the inputs, same of the outputs), or NotExpressible."""
    inits = {i.name for i in model.graph.initializer}
    ins = [v for v in model.graph.input if v.name not in inits]
    for kind, values in (("input", ins), ("output", model.graph.output)):
        for v in values:
            which = v.type.WhichOneof("value")
            if which != "tensor_type":
                raise NotExpressible(f"{kind} '{v.name}' is a {which.replace('_type', '')}")
            if v.type.tensor_type.elem_type not in ONNX_TO_KSERVE:
                name = TensorProto.DataType.Name(v.type.tensor_type.elem_type)
                raise NotExpressible(f"{kind} '{v.name}' has element type {name}")
    return ([(v.name, v.type.tensor_type.elem_type) for v in ins],
            [(v.name, v.type.tensor_type.elem_type) for v in model.graph.output])


def first_difference(name, expected, actual):
    """None when `actual` matches `expected`, else a short description."""
    if actual is None:
        return f"output '{name}' missing from the response"
    if expected.dtype == object:
        actual = np.array([a if isinstance(a, bytes) else str(a).encode()
                           for a in actual.ravel()], dtype=object).reshape(actual.shape)
    elif actual.dtype != expected.dtype:
        return f"output '{name}': datatype {actual.dtype}, expected {expected.dtype}"
    if actual.shape != expected.shape:
        return f"output '{name}': shape {list(actual.shape)}, expected {list(expected.shape)}"
    if expected.dtype.kind == "f" or expected.dtype.name == "bfloat16":
        exp = expected.astype(np.float64)
        act = actual.astype(np.float64)
        bad = ~np.isclose(act, exp, rtol=RTOL, atol=ATOL, equal_nan=True)
    else:
        exp, act = expected, actual
        bad = ~(act == exp) if exp.size else np.zeros(0, bool)
    if not np.any(bad):
        return None
    idx = tuple(int(i) for i in np.argwhere(bad)[0]) if bad.ndim else ()
    return (f"output '{name}': {int(np.count_nonzero(bad))} of {exp.size} values differ; "
            f"first at {list(idx)}: got {act[idx]!r}, expected {exp[idx]!r}")


_local = threading.local()


def _client(url):
    if getattr(_local, "url", None) != url:
        _local.client = httpclient.InferenceServerClient(
            url, connection_timeout=REQUEST_TIMEOUT_S, network_timeout=REQUEST_TIMEOUT_S)
        _local.url = url
    return _local.client


def run_case(server, case, ins, outs):
    """Runs every data set of a READY case; returns its result dict."""
    result = {"case": case, "datasets": 0}
    for ds in sorted((NODE_DIR / case).glob("test_data_set_*")):
        n_in = len(list(ds.glob("input_*.pb")))
        n_out = len(list(ds.glob("output_*.pb")))
        try:
            # The backend tests pair input_i.pb with the i-th graph input
            # (initializers excluded); trailing optional inputs may be omitted.
            feeds = [load_tensor(ds / f"input_{i}.pb", ins[i][1]) for i in range(n_in)]
            expected = [load_tensor(ds / f"output_{i}.pb", outs[i][1]) for i in range(n_out)]
            inputs = []
            for (name, _), arr in zip(ins, feeds):
                inp = httpclient.InferInput(name, list(arr.shape), kserve_datatype(arr))
                inp.set_data_from_numpy(arr, binary_data=True)
                inputs.append(inp)
        except (NotExpressible, InferenceServerException) as e:
            result.update(status="not_expressible", detail=f"{ds.name}: {e}")
            return result
        outputs = [httpclient.InferRequestedOutput(n, binary_data=True) for n, _ in outs]
        try:
            response = _client(server.url).infer(case, inputs, outputs=outputs)
        except InferenceServerException as e:
            result.update(status="error", detail=f"{ds.name}: [{e.status()}] {e.message()}",
                          error_body=_raw_error(server, case, inputs, outputs))
            return result
        result["datasets"] += 1
        for (name, _), exp in zip(outs, expected):
            diff = first_difference(name, exp, response.as_numpy(name))
            if diff:
                result.update(status="fail", detail=f"{ds.name}: {diff}")
                return result
    result["status"] = "pass"
    return result


def _raw_error(server, case, inputs, outputs):
    """Replays a failed request without tritonclient to capture the raw body."""
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    headers = {"Content-Type": "application/octet-stream"}
    if json_size is not None:
        headers["Inference-Header-Content-Length"] = str(json_size)
    r = requests.post(f"{server.base}/v2/models/{case}/infer", data=body, headers=headers,
                      timeout=REQUEST_TIMEOUT_S)
    return {"status": r.status_code, "content_type": r.headers.get("Content-Type"),
            "body": r.text[:2000]}


@pytest.fixture(scope="module")
def conformance(tmp_path_factory):
    if not NODE_DIR.is_dir():
        pytest.fail(f"{NODE_DIR} not found: scripts/install-deps.sh installs libonnx-testdata")
    started = time.monotonic()
    repo = tmp_path_factory.mktemp("onnx_node_repo")
    cases, io = [], {}
    results = {}
    for case_dir in sorted(NODE_DIR.iterdir()):
        if not (case_dir / "model.onnx").is_file():
            continue
        case = case_dir.name
        cases.append(case)
        (repo / case / "1").mkdir(parents=True)
        (repo / case / "1" / "model.onnx").symlink_to(case_dir / "model.onnx")
        try:
            io[case] = tensor_io(onnx.load(str(case_dir / "model.onnx"), load_external_data=False))
        except NotExpressible as e:
            results[case] = {"case": case, "status": "not_expressible", "detail": str(e)}

    server = Server([repo], "--execution-threads", "2").start(wait_ready=False)
    try:
        server.wait_ready(deadline_s=180)
        load_s = time.monotonic() - started
        index = requests.post(server.base + "/v2/repository/index", json={}, timeout=60).json()
        state = {m["name"]: m for m in index}
        runnable = []
        for case in cases:
            entry = state.get(case, {"state": "MISSING", "reason": "not in the repository index"})
            if case in results:  # not expressible; the server refuses these too
                results[case]["server_state"] = entry["state"]
                results[case]["server_reason"] = entry.get("reason", "")
            elif entry["state"] != "READY":
                results[case] = {"case": case, "status": "not_loadable",
                                 "detail": entry.get("reason", "")}
            else:
                runnable.append(case)

        with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = {pool.submit(run_case, server, c, *io[c]): c for c in runnable}
            for f in concurrent.futures.as_completed(futures):
                try:
                    results[futures[f]] = f.result()
                except Exception as e:  # connection reset, timeout: the server is in trouble
                    results[futures[f]] = {"case": futures[f], "status": "error",
                                           "detail": f"client: {type(e).__name__}: {e}",
                                           "error_body": None}
        alive_after = server.proc.poll() is None
        try:
            ready_after = requests.get(server.base + "/v2/health/ready", timeout=10).status_code
        except requests.RequestException as e:
            ready_after = repr(e)
    finally:
        exit_code = server.stop()
    elapsed = time.monotonic() - started

    counts = {k: 0 for k in ("pass", "fail", "error", "not_loadable", "not_expressible")}
    unexplained = 0
    for r in results.values():
        counts[r["status"]] += 1
        if r["status"] in ("fail", "error"):
            r["known_cause"] = next((why for pattern, why in KNOWN_CAUSES
                                     if re.fullmatch(pattern, r["case"])), None)
            unexplained += r["known_cause"] is None
    summary = {
        "total": len(cases), **counts, "unexplained_fail_or_error": unexplained,
        "load_seconds": round(load_s, 1), "seconds": round(elapsed, 1),
        "alive_after": alive_after, "ready_status_after": ready_after, "exit_code": exit_code,
        "line": (f"ONNX node conformance: {counts['pass']} passed, {counts['fail']} failed, "
                 f"{counts['error']} errors, {counts['not_loadable']} not loadable by ONNX Runtime, "
                 f"{counts['not_expressible']} not expressible, of {len(cases)} cases"),
    }
    report = {"testdata": str(NODE_DIR), "summary": summary,
              "cases": [results[c] for c in cases]}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1, default=str) + "\n")
    report["server_log"] = server.text()
    return report


def test_conformance_summary(conformance, capsys):
    s = conformance["summary"]
    lines = [s["line"] + f" ({s['seconds']} s; report {REPORT.relative_to(ROOT)})"]
    for status in ("fail", "error"):
        for r in conformance["cases"]:
            if r["status"] == status:
                why = r.get("known_cause") or "UNEXPLAINED"
                lines.append(f"  {status}: {r['case']}: {r['detail']}  [{why}]")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert s["total"] > 0


def test_server_survives(conformance):
    s = conformance["summary"]
    log = conformance["server_log"][-5000:]
    assert s["alive_after"], f"mmserve died during the conformance run:\n{log}"
    assert s["ready_status_after"] == 200, f"/v2/health/ready: {s['ready_status_after']}\n{log}"
    assert s["exit_code"] == 0, f"mmserve exited with {s['exit_code']}:\n{log}"
    reports = [line for line in conformance["server_log"].splitlines()
               if "runtime error:" in line or "Sanitizer" in line]
    assert not reports, "sanitizer reports in the server log:\n" + "\n".join(reports[:20])


def test_pass_count_floor(conformance):
    s = conformance["summary"]
    assert s["pass"] >= PASS_FLOOR, s["line"]


def test_errors_are_json_with_error_key(conformance):
    bad = []
    for r in conformance["cases"]:
        if r["status"] != "error" or r.get("error_body") is None:
            continue
        raw = r["error_body"]
        try:
            msg = json.loads(raw["body"])["error"]
            ok = isinstance(msg, str) and msg.strip() != ""
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok or raw["status"] == 200:
            bad.append(f"{r['case']}: {raw}")
    assert not bad, "error responses without a JSON {\"error\": \"...\"} body:\n" + "\n".join(bad)


def test_no_client_side_failures(conformance):
    """Connection resets and timeouts mean the server hung or dropped a request."""
    bad = [f"{r['case']}: {r['detail']}" for r in conformance["cases"]
           if r["status"] == "error" and r.get("error_body") is None]
    assert not bad, "\n".join(bad)
