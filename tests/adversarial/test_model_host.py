"""A hostile Python model against its host (issue 19): custom metrics beyond
every bound (families, metrics per model, label sizes, names that would
impersonate the server's), and BLS calls that try to reach another tenant's
model. Each is refused with a clear error; the
/metrics endpoint stays bounded, and the server and its other models keep
serving."""
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import requests
import tritonclient.http as httpclient

from conftest import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from python_models import ADD_SUB, add_sub_config, write_model  # noqa: E402

# On its one request, tries every abuse and returns how far each went (as
# OUTPUT0 counts) and the messages it got (in the log).
HOSTILE = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.kept = []

    def execute(self, requests):
        logger = pb_utils.Logger
        counts = []
        # 1. As many metrics as it can make in one family.
        family = pb_utils.MetricFamily("flood_total", "flood", pb_utils.MetricFamily.COUNTER)
        made = 0
        try:
            for i in range(5000):
                self.kept.append(family.Metric(labels={"i": str(i)}))
                made += 1
        except pb_utils.TritonModelException as e:
            logger.log_warn("metrics flood stopped: " + e.message())
        counts.append(made)
        self.kept.clear()  # released: the family leaves with its last metric
        # 2. As many families as it can make.
        families = 0
        try:
            for i in range(500):
                self.kept.append(pb_utils.MetricFamily(
                    "fam_%d" % i, "", pb_utils.MetricFamily.GAUGE).Metric())
                families += 1
        except pb_utils.TritonModelException as e:
            logger.log_warn("family flood stopped: " + e.message())
        counts.append(families)
        # 3. A huge label value, a server metric's name, another model's label.
        refused = 0
        for attempt in (
                lambda: family.Metric(labels={"k": "x" * 1000}),
                lambda: pb_utils.MetricFamily(
                    "mmserve_inference_requests_total", "", pb_utils.MetricFamily.COUNTER
                ).Metric(),
                lambda: family.Metric(labels={"model": "victim"})):
            try:
                attempt()
            except pb_utils.TritonModelException as e:
                logger.log_warn("refused: " + e.message()[:200])
                refused += 1
        counts.append(refused)
        # 4. Another tenant's model: unknown to it.
        response = pb_utils.InferenceRequest(
            model_name="victim", requested_output_names=["OUTPUT0"],
            inputs=[pb_utils.Tensor("INPUT0", np.ones(4, np.float32)),
                    pb_utils.Tensor("INPUT1", np.ones(4, np.float32))]).exec()
        counts.append(1 if response.has_error() and
                      response.error().code() == pb_utils.TritonError.NOT_FOUND else 0)
        out = np.array(counts, dtype=np.float32)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", out),
                                            pb_utils.Tensor("OUTPUT1", out)])
                for _ in requests]
"""

KEY_H = "hostile-key-0123456789abcdef"
KEY_V = "victim-key-0123456789abcdef0"


def write_tenants(path, tenants):
    """A tenants file: (id, key, repository) each, keys stored salted."""
    lines = ["tenants:"]
    for tenant_id, key, repo in tenants:
        salt = os.urandom(16)
        stored = "sha256$" + salt.hex() + "$" + hashlib.sha256(salt + key.encode()).hexdigest()
        lines += [f"  - id: {tenant_id}", f"    api_keys: ['{stored}']",
                  f"    repositories: [{repo}]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def add_sub_inputs(values):
    out = []
    for name in ("INPUT0", "INPUT1"):
        t = httpclient.InferInput(name, [4], "FP32")
        t.set_data_from_numpy(np.array(values, dtype=np.float32))
        out.append(t)
    return out


def test_a_hostile_model_cannot_blow_up_metrics_or_reach_another_tenant(tmp_path):
    hostile_repo, victim_repo = tmp_path / "h", tmp_path / "v"
    write_model(hostile_repo, "hostile", HOSTILE, add_sub_config("hostile"))
    write_model(victim_repo, "victim", ADD_SUB, add_sub_config("victim"))
    tenants = write_tenants(tmp_path / "tenants.yaml", [("hostile", KEY_H, hostile_repo),
                                                        ("victim", KEY_V, victim_repo)])
    s = Server([hostile_repo, victim_repo], "--tenants", tenants).start()
    try:
        client = httpclient.InferenceServerClient(s.url)
        result = client.infer("hostile", add_sub_inputs([0, 0, 0, 0]),
                              headers={"Authorization": f"Bearer {KEY_H}"})
        made, families, refused, hidden = result.as_numpy("OUTPUT0").tolist()
        assert made == 1024, made          # metrics per model version
        assert families == 64, families    # families per model version
        assert refused == 3 and hidden == 1
        said = "\n".join(line for line in s.text().splitlines()
                          if "stopped:" in line or "refused:" in line)
        for needle in ("holds 1024 metrics, the limit per model",
                       "has metrics in 64 families, the limit per model",
                       "has a value of 1000 bytes; the limit is 256",
                       "which the server's own metrics use",
                       "label 'model' is the server's"):
            assert needle in said, (needle, said)
        scrape = requests.get(s.metrics_url, timeout=30).text
        assert "flood_total" not in scrape  # released
        series = [line for line in scrape.splitlines() if line.startswith("fam_")]
        assert len(series) == 64, len(series)
        assert all('model="hostile"' in line for line in series), series[:3]
        # The victim keeps serving its own tenant.
        np.testing.assert_array_equal(
            client.infer("victim", add_sub_inputs([1, 2, 3, 4]),
                         headers={"Authorization": f"Bearer {KEY_V}"}).as_numpy("OUTPUT0"),
            [2, 4, 6, 8])
    finally:
        assert s.stop() == 0, s.text()[-3000:]

