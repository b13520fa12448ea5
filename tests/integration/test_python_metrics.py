"""Custom metrics (issue 19): pb_utils.MetricFamily / Metric in a Python model,
exported on the server's /metrics with the model's `model` and `version`
labels, values read back with value(), and gone once the model is unloaded.
The model is Triton's python_backend examples/custom_metrics (add_sub with a
latency counter), as users copy it, plus a gauge and a histogram."""
import re

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from conftest import Server
from python_models import add_sub_config, write_model

# Triton's examples/custom_metrics/model.py (its labels name the model itself),
# with a gauge, a histogram and a per-kind counter added, and the values read
# back into an extra output.
CUSTOM_METRICS = """
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.model_config = model_config = json.loads(args["model_config"])
        output0_config = pb_utils.get_output_config_by_name(model_config, "OUTPUT0")
        self.out0_dtype = pb_utils.triton_string_to_numpy(output0_config["data_type"])
        self.metric_family = pb_utils.MetricFamily(
            name="requests_process_latency_ns",
            description="Cumulative time spent processing requests",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        self.metric = self.metric_family.Metric(
            labels={"model": "custom_metrics", "version": "1"}
        )
        self.by_kind = pb_utils.MetricFamily(
            name="requests_by_kind_total", description="Requests by kind",
            kind=pb_utils.MetricFamily.COUNTER)
        self.even = self.by_kind.Metric(labels={"kind": "even"})
        self.odd = self.by_kind.Metric(labels={"kind": "odd"})
        self.last_sum = pb_utils.MetricFamily(
            "last_input_sum", "The sum of INPUT0 of the last request",
            pb_utils.MetricFamily.GAUGE).Metric()
        self.sizes = pb_utils.MetricFamily(
            "input_sum_distribution", "Sums of INPUT0",
            pb_utils.MetricFamily.HISTOGRAM).Metric(buckets=[0, 10, 100])

    def execute(self, requests):
        responses = []
        start_ns = time.time_ns()
        for request in requests:
            in_0 = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            in_1 = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            total = float(in_0.sum())
            (self.even if int(total) % 2 == 0 else self.odd).increment(1)
            self.last_sum.set(total)
            self.sizes.observe(total)
            values = np.array([self.even.value(), self.odd.value(), self.last_sum.value(), 0])
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", (in_0 + in_1).astype(self.out0_dtype)),
                pb_utils.Tensor("OUTPUT1", values.astype(self.out0_dtype)),
            ]))
        end_ns = time.time_ns()
        self.metric.increment(end_ns - start_ns)
        return responses
"""


def scrape(server):
    r = requests.get(server.metrics_url, timeout=10)
    assert r.status_code == 200, r.text
    return r.text


def sample(text, name, **labels):
    """The value of the sample `name` whose labels are exactly `labels`; None if absent."""
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if got == labels:
            return float(m.group(3))
    return None


def inputs(module, first):
    a = np.array(first, dtype=np.float32)
    out = []
    for name in ("INPUT0", "INPUT1"):
        t = module.InferInput(name, [4], "FP32")
        t.set_data_from_numpy(a)
        out.append(t)
    return out


@pytest.fixture
def server(tmp_path):
    write_model(tmp_path, "custom_metrics", CUSTOM_METRICS, add_sub_config("custom_metrics"))
    s = Server([tmp_path], "--model-control-mode", "explicit", "--load-model",
               "custom_metrics").start()
    yield s
    assert s.stop() == 0, s.text()[-3000:]


def test_custom_metrics_on_the_metrics_endpoint_with_the_models_labels(server):
    h = httpclient.InferenceServerClient(server.url)
    g = grpcclient.InferenceServerClient(server.grpc_url)
    own = {"model": "custom_metrics", "version": "1"}
    # Before any request: the series exist at 0.
    text = scrape(server)
    assert sample(text, "requests_by_kind_total", kind="even", **own) == 0, text
    assert "# TYPE requests_process_latency_ns counter" in text
    assert "# HELP last_input_sum The sum of INPUT0 of the last request" in text
    sums = [[1, 1, 1, 1], [1, 2, 3, 5], [10, 20, 30, 40], [0, 0, 0, 2]]  # 4, 11, 100, 2
    for i, values in enumerate(sums):
        client, module = (h, httpclient) if i % 2 == 0 else (g, grpcclient)
        result = client.infer("custom_metrics", inputs(module, values))
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.array(values) * 2.0)
    # value() read back inside the model: 3 even, 1 odd, last sum 2.
    read_back = result.as_numpy("OUTPUT1")
    assert read_back.tolist() == [3, 1, 2, 0], read_back
    text = scrape(server)
    assert sample(text, "requests_by_kind_total", kind="even", **own) == 3, text
    assert sample(text, "requests_by_kind_total", kind="odd", **own) == 1, text
    assert sample(text, "last_input_sum", **own) == 2, text
    assert sample(text, "requests_process_latency_ns", **own) > 0, text
    assert "# TYPE input_sum_distribution histogram" in text
    assert sample(text, "input_sum_distribution_bucket", le="0", **own) == 0, text
    assert sample(text, "input_sum_distribution_bucket", le="10", **own) == 2, text
    assert sample(text, "input_sum_distribution_bucket", le="100", **own) == 4, text
    assert sample(text, "input_sum_distribution_bucket", le="+Inf", **own) == 4, text
    assert sample(text, "input_sum_distribution_count", **own) == 4, text
    assert sample(text, "input_sum_distribution_sum", **own) == 117, text
    # The server's own metrics are still there.
    assert "mmserve_inference_requests_total" in text
    # Unloaded: its metrics leave /metrics.
    h.unload_model("custom_metrics")
    text = scrape(server)
    for family in ("requests_by_kind_total", "last_input_sum", "input_sum_distribution",
                   "requests_process_latency_ns"):
        assert family not in text, text
    # Loaded again: they start over.
    h.load_model("custom_metrics")
    h.infer("custom_metrics", inputs(httpclient, [1, 1, 1, 1]))
    text = scrape(server)
    assert sample(text, "requests_by_kind_total", kind="even", **own) == 1, text
