"""The Helm chart deploy/helm/mmserve, offline.

For every documented values combination (one file per mode in the chart's ci/ folder) the
chart is linted (helm lint --strict) and rendered (helm template), every rendered object is
validated against Kubernetes' OpenAPI schemas (kubernetes-validate, strict: unknown fields
fail) for the oldest and newest Kubernetes the checks cover, the ServiceMonitor against the
prometheus-operator CRD's schema, and what matters is asserted: probes, graceful
termination, the memory budget derived from the limit, Secrets, the HPA's metric, the
routers' replica lists and hashing. mmserve itself parses each mode's rendered command line
(it starts on loopback with it and stops on SIGTERM), nginx checks the nginx router's config,
and tests/deploy/envoy_check (Envoy's API and its validation rules, from go-control-plane) the
Envoy router's.

helm, the CRD and envoy-check come from scripts/install-deps.sh --test (make test); without
them the tests fail, saying so.
"""
import copy
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mmserve"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
INSTALL_DEPS = ROOT / "scripts" / "install-deps.sh"
CACHE = Path(os.environ.get("MMSERVE_CACHE", Path.home() / ".cache" / "mmserve"))
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion: the preStop sleep action)
# and the newest kubernetes-validate knows.
K8S_OLDEST = "1.30.0"
K8S_VERSIONS = [K8S_OLDEST, kubernetes_validate.latest_version()]
RELEASE = "mm"
NAMESPACE = "serving"


def _install_deps_var(name: str) -> str:
    m = re.search(rf"^{name}=(\S+)$", INSTALL_DEPS.read_text(), re.M)
    assert m, f"{name}= not found in {INSTALL_DEPS}"
    return m.group(1)


HELM = Path(os.environ.get(
    "MMSERVE_HELM", CACHE / f"helm-{_install_deps_var('HELM_VERSION')}" / "helm"))
PROMETHEUS_OPERATOR_CRDS = (CACHE /
                            f"prometheus-operator-crds-{_install_deps_var('PROM_OPERATOR_VERSION')}")
SERVICEMONITOR_CRD = PROMETHEUS_OPERATOR_CRDS / "monitoring.coreos.com_servicemonitors.yaml"
PROMETHEUSRULE_CRD = PROMETHEUS_OPERATOR_CRDS / "monitoring.coreos.com_prometheusrules.yaml"
RULES_FILE = ROOT / "deploy" / "prometheus" / "mmserve-rules.yml"
# The Envoy config validator: built by install-deps.sh at go.mod's go-control-plane version,
# with a stamp of the sources it was built from.
ENVOY_CHECK_SRC = ROOT / "tests" / "deploy" / "envoy_check"
_GCP = re.search(r"^\s*github\.com/envoyproxy/go-control-plane/envoy v(\S+)$",
                 (ENVOY_CHECK_SRC / "go.mod").read_text(), re.M)
ENVOY_CHECK = Path(os.environ.get(
    "MMSERVE_ENVOY_CHECK", CACHE / f"envoy-check-{_GCP.group(1) if _GCP else 'unknown'}" / "envoy-check"))


def helm() -> str:
    if not os.access(HELM, os.X_OK):
        pytest.fail(f"helm not found at {HELM}: run scripts/install-deps.sh --test "
                    "(make test does), which builds it once from the Go module proxy")
    return str(HELM)


def envoy_check() -> str:
    install = "run scripts/install-deps.sh --test (make test does), which builds it from tests/deploy/envoy_check"
    if not os.access(ENVOY_CHECK, os.X_OK):
        pytest.fail(f"the Envoy config validator is not at {ENVOY_CHECK}: {install}")
    if "MMSERVE_ENVOY_CHECK" not in os.environ:  # (as install-deps.sh hashes them)
        src = b"".join(p.read_bytes() for p in [ENVOY_CHECK_SRC / "go.mod", ENVOY_CHECK_SRC / "go.sum",
                                                 *sorted(ENVOY_CHECK_SRC.glob("*.go"))])
        stamp = ENVOY_CHECK.parent / f".src-{hashlib.sha256(src).hexdigest()[:16]}"
        if not stamp.exists():
            pytest.fail(f"{ENVOY_CHECK} was built from other sources than tests/deploy/envoy_check: {install}")
    return str(ENVOY_CHECK)


class RenderError(Exception):
    pass


@lru_cache(maxsize=None)
def _render(values_files: tuple, sets: tuple, kube_version: str) -> tuple:
    cmd = [helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
           "--kube-version", kube_version]
    for f in values_files:
        cmd += ["-f", str(f)]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RenderError(r.stderr.strip())
    return tuple(d for d in yaml.safe_load_all(r.stdout) if d)


def render(*values_files, sets=(), kube_version=K8S_OLDEST) -> list:
    """The chart's objects for these values files and --set flags (deep copies)."""
    return copy.deepcopy(list(_render(tuple(str(f) for f in values_files), tuple(sets),
                                      kube_version)))


def render_error(*values_files, sets=()) -> str:
    with pytest.raises(RenderError) as e:
        render(*values_files, sets=sets)
    return str(e.value)


def ci(name: str) -> Path:
    path = CHART / "ci" / f"{name}.yaml"
    assert path.exists(), path
    return path


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def workload(objs):
    found = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")
             and o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "server"]
    assert len(found) == 1, [o["kind"] for o in found]
    return found[0]


def server_container(objs):
    (c,) = [c for c in workload(objs)["spec"]["template"]["spec"]["containers"] if c["name"] == "mmserve"]
    return c


def flags(objs) -> dict:
    """The server's --name=value arguments (a repeated flag: a list of its values)."""
    out = {}
    for a in server_container(objs)["args"]:
        assert a.startswith("--") and "=" in a, f"argument not in --name=value form: {a!r}"
        k, v = a[2:].split("=", 1)
        out.setdefault(k, []).append(v)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def mib(text: str) -> int:
    m = re.fullmatch(r"(\d+)MiB", text)
    assert m, text
    return int(m.group(1))


# ----------------------------------------------------------------- lint, render, validate

def test_helm_is_installed():
    r = subprocess.run([helm(), "version", "--short"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("v" + _install_deps_var("HELM_VERSION")), r


def test_every_mode_is_documented():
    readme = (CHART / "README.md").read_text()
    assert len(CI_VALUES) >= 10
    for f in CI_VALUES:
        assert f"ci/{f.name}" in readme, f"ci/{f.name} is not described in the chart's README"
    for name in re.findall(r"ci/([\w.-]+\.yaml)", readme):
        assert (CHART / "ci" / name).exists(), f"the README names ci/{name}, which does not exist"


def test_every_value_is_documented():
    """Each leaf key of values.yaml appears in the README's table (as its dotted path)."""
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    whole = {"resources", "podSecurityContext", "securityContext", "autoscaling.behavior",
             "probes.liveness", "probes.readiness", "probes.startup", "router.resources"}

    def leaves(d, prefix=""):
        for k, v in d.items():
            path = f"{prefix}{k}"
            if isinstance(v, dict) and v and path not in whole:
                yield from leaves(v, path + ".")
            else:
                yield path

    missing = [p for p in leaves(values) if f"`{p}`" not in readme]
    assert not missing, f"values not in the README's table: {missing}"


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_lint(values):
    r = subprocess.run([helm(), "lint", "--strict", str(CHART), "-f", str(values)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 chart(s) failed" in r.stdout


def _strict_crd_schema(schema):
    """The CRD's structural schema, with unknown fields refused where the API server would
    prune them (so that a misspelt field fails here), and its patterns in Python's syntax."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node \
                    and "additionalProperties" not in node \
                    and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            # Go's regexps take a flag group anywhere ('^(?i)(abort|warn)?$', in the
            # PrometheusRule's); Python's only at the start, where it means the same.
            pattern = node.get("pattern")
            if isinstance(pattern, str) and "(?i)" in pattern[1:]:
                node["pattern"] = "(?i)" + pattern.replace("(?i)", "")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(s)
    return s


@lru_cache(maxsize=None)
def operator_schema(kind):
    """The v1 schema of a prometheus-operator kind (ServiceMonitor, PrometheusRule)."""
    path = {"ServiceMonitor": SERVICEMONITOR_CRD, "PrometheusRule": PROMETHEUSRULE_CRD}[kind]
    if not path.exists():
        pytest.fail(f"the {kind} CRD is not at {path}: run scripts/install-deps.sh --test")
    crd = yaml.safe_load(path.read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return _strict_crd_schema(v1["schema"]["openAPIV3Schema"])


def servicemonitor_schema():
    return operator_schema("ServiceMonitor")


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_manifests_validate(values):
    checked = set()
    for kube in K8S_VERSIONS:
        for obj in render(values, kube_version=kube):
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            if obj["apiVersion"] == "monitoring.coreos.com/v1":
                assert obj["kind"] in ("ServiceMonitor", "PrometheusRule"), name
                jsonschema.validate(obj, operator_schema(obj["kind"]))
            else:
                try:
                    kubernetes_validate.validate(obj, kube, strict=True)
                except kubernetes_validate.ValidationError as e:
                    path = ".".join(str(p) for p in e.path)
                    pytest.fail(f"{values.name}: {name} is not valid for Kubernetes {kube}: "
                                f"{path}: {e.message}")
                # A kind without a schema raises SchemaNotFoundError: it fails the test too.
            checked.add(name)
    assert checked


def test_renders_only_known_kinds():
    kinds = {o["kind"] for f in CI_VALUES for o in render(f)}
    assert kinds == {"Deployment", "StatefulSet", "Service", "ServiceAccount", "Secret",
                     "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                     "ServiceMonitor", "PrometheusRule"}, kinds


# --------------------------------------------------------------------------- the server

@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_probes_hit_the_health_endpoints(values):
    objs = render(values)
    c = server_container(objs)
    f = flags(objs)
    http = next(p for p in c["ports"] if p["name"] == "http")
    assert str(http["containerPort"]) == f["http-port"]
    assert f["http-address"] == f["grpc-address"] == f["metrics-address"] == "0.0.0.0"
    mutual = "tls-client-ca" in f
    for probe, path in (("livenessProbe", "/v2/health/live"), ("startupProbe", "/v2/health/live"),
                        ("readinessProbe", "/v2/health/ready")):
        p = c[probe]
        if mutual:  # the kubelet has no client certificate
            assert p["tcpSocket"]["port"] == "http" and "httpGet" not in p
        else:
            assert p["httpGet"]["path"] == path, probe
            assert p["httpGet"]["port"] == "http"
            assert p["httpGet"]["scheme"] == ("HTTPS" if "tls-cert" in f else "HTTP")


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_graceful_termination(values):
    objs = render(values)
    pod = workload(objs)["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = server_container(objs)["lifecycle"]["preStop"]["sleep"]["seconds"]
    exit_timeout = int(flags(objs)["exit-timeout-secs"])
    assert 0 < exit_timeout and pre_stop + exit_timeout < grace
    assert (grace, pre_stop, exit_timeout) == (60, 10, 45)


def test_termination_follows_the_grace_period():
    objs = render(sets=("terminationGracePeriodSeconds=120", "lifecycle.preStopSleepSeconds=15",
                        "lifecycle.exitMarginSeconds=5"))
    assert flags(objs)["exit-timeout-secs"] == "100"
    c = server_container(objs)
    assert c["lifecycle"]["preStop"]["sleep"]["seconds"] == 15
    objs = render(sets=("lifecycle.preStopExec=true",))
    assert server_container(objs)["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "10"]}}
    err = render_error(sets=("terminationGracePeriodSeconds=12",))
    assert "terminationGracePeriodSeconds (12) must exceed" in err


@pytest.mark.parametrize("limit, fraction, expected_mib", [
    ("4Gi", 0.75, 3072),
    ("1500Mi", 0.75, 1125),
    ("8G", 0.5, 8 * 10**9 // 2 // 2**20),
    ("1.5Gi", 0.8, int(1.5 * 2**30 * 0.8) // 2**20),
    ("17179869184", 0.25, 4096),
])
def test_memory_budget_is_derived_from_the_limit(limit, fraction, expected_mib):
    objs = render(sets=(f"resources.limits.memory={limit}", f"memoryBudget.fractionOfLimit={fraction}"))
    budget = mib(flags(objs)["model-memory-budget"])
    assert budget == expected_mib
    assert server_container(objs)["resources"]["limits"]["memory"] in (limit, int(limit) if limit.isdigit() else limit)


def test_memory_budget_explicit_absent_and_invalid():
    assert flags(render(ci("memory-explicit")))["model-memory-budget"] == "6GiB"
    assert flags(render())["model-memory-budget"] == "3072MiB"
    # No memory limit: no budget flag (unlimited), and the notes say so.
    assert "model-memory-budget" not in flags(render(sets=("resources.limits=null",)))
    assert "cannot read the quantity \"4GB\"" in render_error(sets=("resources.limits.memory=4GB",))
    assert "fractionOfLimit must be in (0, 1]" in render_error(sets=("memoryBudget.fractionOfLimit=1.5",))


def test_default_deployment():
    objs = render(ci("default"))
    w = workload(objs)
    assert w["kind"] == "Deployment" and w["spec"]["replicas"] == 2
    f = flags(objs)
    assert f["model-repository"] == "/opt/mmserve/models"
    assert f["model-control-mode"] == "none" and f["execution-slots"] == "2"
    assert f["python-env"] == "/opt/mmserve/python"  # the image's venv (deploy/Dockerfile)
    assert "strict-readiness" not in f
    assert flags(render(ci("default"), sets=["strictReadiness=true"]))["strict-readiness"] == "true"
    assert f["model-cache-dir"] == "/var/cache/mmserve/models"
    assert mib(f["model-cache-size"]) == int(10 * 1024 * 0.9)  # 0.9 x the 10Gi emptyDir
    pod = w["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
    assert server_container(objs)["securityContext"]["readOnlyRootFilesystem"] is True
    assert server_container(objs)["image"] == "mmserve:0.1.0"
    svc = one(objs, "Service", f"{RELEASE}-mmserve")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert svc["spec"]["selector"] == w["spec"]["selector"]["matchLabels"]
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["selector"] == w["spec"]["selector"]
    assert not [o for o in objs if o["kind"] in ("HorizontalPodAutoscaler", "ServiceMonitor", "Secret")]


def test_statefulset_with_a_cache_volume():
    objs = render(ci("statefulset-cache"))
    w = workload(objs)
    assert w["kind"] == "StatefulSet"
    headless = one(objs, "Service", w["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    (claim,) = w["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "standard"
    mount = next(m for m in server_container(objs)["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    f = flags(objs)
    assert mount["mountPath"] == f["model-cache-dir"]
    assert mib(f["model-cache-size"]) == int(50 * 1024 * 0.8)
    assert not [v for v in w["spec"]["template"]["spec"]["volumes"] if v["name"] == "model-cache"]


def test_s3_uri_and_credentials_from_a_secret():
    objs = render(ci("s3"))
    c = server_container(objs)
    f = flags(objs)
    assert f["model-repository"] == "$(MMSERVE_MODEL_REPOSITORY)"  # the kubelet expands it
    assert f["s3-endpoint"] == "http://minio.minio.svc:9000"
    assert f["model-control-mode"] == "poll" and f["repository-poll-secs"] == "30"
    env = {e["name"]: e for e in c["env"]}
    assert env["MMSERVE_MODEL_REPOSITORY"]["valueFrom"]["secretKeyRef"] == {
        "name": "mmserve-s3", "key": "MMSERVE_MODEL_REPOSITORY"}
    assert {"secretRef": {"name": "mmserve-s3"}} in c["envFrom"]
    assert not [o for o in objs if o["kind"] == "Secret"]  # an existing Secret: none made


def test_mlflow_with_a_secret_the_chart_makes():
    objs = render(ci("mlflow"))
    f = flags(objs)
    assert f["model-repository"] == "mlflow://mlflow.mlflow.svc:5000"
    assert f["mlflow-alias"] == "champion"
    assert f["model-control-mode"] == "explicit" and f["load-on-demand"] == "true"
    secret = one(objs, "Secret", f"{RELEASE}-mmserve-credentials")
    assert secret["stringData"] == {"MLFLOW_TRACKING_TOKEN": "not-a-real-token"}
    c = server_container(objs)
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in c["envFrom"]
    # A changed Secret rolls the pods.
    assert "checksum/secrets" in workload(objs)["spec"]["template"]["metadata"]["annotations"]
    changed = render(ci("mlflow"), sets=("credentials.data.MLFLOW_TRACKING_TOKEN=other",))
    assert workload(changed)["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"] != \
        workload(objs)["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]


@pytest.mark.parametrize("mode", ["tenants", "tenants-inline"])
def test_tenants_file_from_a_secret(mode):
    objs = render(ci(mode))
    f = flags(objs)
    pod = workload(objs)["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if v["name"] == "tenants")
    mount = next(m for m in server_container(objs)["volumeMounts"] if m["name"] == "tenants")
    assert mount["readOnly"] and "subPath" not in mount  # a subPath mount would never update
    (item,) = vol["secret"]["items"]
    assert f["tenants"] == f"{mount['mountPath']}/{item['path']}"
    if mode == "tenants":
        assert vol["secret"]["secretName"] == "mmserve-tenants"
    else:
        secret = one(objs, "Secret", vol["secret"]["secretName"])
        tenants = yaml.safe_load(secret["stringData"][item["key"]])
        assert [t["id"] for t in tenants["tenants"]] == ["team-a", "ops"]


def test_tls_and_mutual_tls():
    f = flags(render(ci("tls")))
    assert (f["tls-cert"], f["tls-key"]) == ("/etc/mmserve/tls/tls.crt", "/etc/mmserve/tls/tls.key")
    assert "tls-client-ca" not in f
    objs = render(ci("mtls"))
    assert flags(objs)["tls-client-ca"] == "/etc/mmserve/tls/ca.crt"
    vol = next(v for v in workload(objs)["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls")
    assert vol["secret"]["secretName"] == "mmserve-tls"
    assert "tls.existingSecret" in render_error(sets=("tls.enabled=true",))


def test_hpa_on_in_flight_requests_per_slot():
    objs = render(ci("hpa"))
    w = workload(objs)
    assert "replicas" not in w["spec"]  # the HPA owns the count
    hpa = one(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": w["kind"],
                                             "name": w["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "mmserve_inference_in_flight"
    # targetPerSlot 1.5 x 4 execution slots
    assert flags(objs)["execution-slots"] == "4"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "6000m"}
    assert flags(render(ci("hpa"), sets=("autoscaling.metric=mmserve_inference_queue_depth",
                                         "autoscaling.targetPerSlot=0.5")))  # renders
    q = one(render(ci("hpa"), sets=("autoscaling.targetPerSlot=0.5",)), "HorizontalPodAutoscaler")
    assert q["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "2000m"
    assert "autoscaling.metric must be" in render_error(ci("hpa"), sets=("autoscaling.metric=cpu",))


def test_servicemonitor_scrapes_the_metrics_port():
    objs = render(ci("hpa"))
    sm = one(objs, "ServiceMonitor")
    svc = one(objs, "Service", f"{RELEASE}-mmserve")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "metrics" and ep["path"] == "/metrics"
    assert "metrics" in [p["name"] for p in svc["spec"]["ports"]]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    # The schema check is not a formality: a misspelt field fails it.
    bad = copy.deepcopy(sm)
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, servicemonitor_schema())


def test_prometheusrule_holds_the_rules_file():
    objs = render(ci("hpa"))
    rule = one(objs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The chart's files/mmserve-rules.yml is a link to the tested rules file, not a copy.
    assert (CHART / "files" / "mmserve-rules.yml").resolve() == RULES_FILE.resolve()
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert "MmserveEvictionChurn" in alerts and "MmserveLatencySLOFastBurn" in alerts
    bad = copy.deepcopy(rule)
    bad["spec"]["groups"][0]["rulez"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, operator_schema("PrometheusRule"))
    assert not [o for o in render() if o["kind"] == "PrometheusRule"]  # off by default


def test_kubernetes_validation_refuses_a_bad_manifest():
    """The strict schemas catch a misspelt field and a wrong type (the check can fail)."""
    w = workload(render())
    bad = copy.deepcopy(w)
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_OLDEST, strict=True)
    bad = copy.deepcopy(w)
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_OLDEST, strict=True)


def test_invalid_combinations_fail_with_a_reason():
    assert "cannot be combined" in render_error(sets=("router.enabled=true", "autoscaling.enabled=true"))
    assert "router.kind=envoy" in render_error(sets=("router.enabled=true", "autoscaling.enabled=true"))
    assert "router.enabled with tls.enabled" in render_error(
        sets=("router.enabled=true", "tls.enabled=true", "tls.existingSecret=x"))
    assert "router.kind must be" in render_error(sets=("router.kind=haproxy",))
    assert "controlMode must be" in render_error(sets=("modelRepository.controlMode=lazy",))
    assert "at least one --model-repository" in render_error(sets=("modelRepository.uris=null",))
    assert "tenants.existingSecret or tenants.create" in render_error(sets=("tenants.enabled=true",))
    assert "one of minAvailable or maxUnavailable" in render_error(sets=("podDisruptionBudget.minAvailable=1",))
    assert "not a plain model name" in render_error(
        sets=("router.enabled=true", "router.hotModels[0]=a b"))


# ---------------------------------------------------------------------------- the routers

def test_nginx_router_lists_every_replica():
    objs = render(ci("router-nginx"))
    w = workload(objs)
    assert w["kind"] == "StatefulSet" and w["spec"]["podManagementPolicy"] == "Parallel"
    replicas = w["spec"]["replicas"]
    assert replicas == 3
    headless = one(objs, "Service", w["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    cm = one(objs, "ConfigMap", f"{RELEASE}-mmserve-router")
    upstream = cm["data"]["upstream.conf"]
    groups = dict(re.findall(r"upstream (\w+) \{(.*?)\n\}", upstream, re.S))
    assert set(groups) == {"mmserve_replicas", "mmserve_hot", "mmserve_replicas_grpc", "mmserve_hot_grpc"}
    for name, body in groups.items():
        port = 8001 if name.endswith("_grpc") else 8000
        servers = re.findall(r"^\s*server (\S+)", body, re.M)
        assert servers == [
            f"{w['metadata']['name']}-{i}.{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port}"
            for i in range(replicas)], name
        assert ("hash $mmserve_model consistent;" in body) == name.startswith("mmserve_replicas")
    assert cm["data"]["hot-models.map"].split() == ["add_sub", "1;"]
    # The ConfigMap's default.conf is files/nginx-router.conf, with the chart's edits only.
    shipped = (CHART / "files" / "nginx-router.conf").read_text()
    assert cm["data"]["default.conf"].rstrip("\n") == shipped.rstrip("\n")  # defaults: no change
    edited = one(render(ci("router-nginx"), sets=("router.httpPort=9090", "router.tries=5",
                                                  "router.timeoutSeconds=60")),
                 "ConfigMap", f"{RELEASE}-mmserve-router")["data"]["default.conf"]
    assert "listen 9090;" in edited and "proxy_next_upstream_tries 5;" in edited
    assert "grpc_next_upstream_tries 5;" in edited and "proxy_read_timeout 60s;" in edited
    assert "300s" not in edited
    # Four replicas: four servers per group.
    cm4 = one(render(ci("router-nginx"), sets=("replicaCount=4",)), "ConfigMap", f"{RELEASE}-mmserve-router")
    assert len(re.findall(r"^\s*server ", cm4["data"]["upstream.conf"], re.M)) == 16
    # The Deployment mounts what the config includes.
    router = one(objs, "Deployment", f"{RELEASE}-mmserve-router")
    mounts = {m["mountPath"] for m in router["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert {"/etc/nginx/conf.d/default.conf", "/etc/nginx/mmserve"} <= mounts
    assert "include /etc/nginx/mmserve/upstream.conf;" in shipped
    svc = one(objs, "Service", f"{RELEASE}-mmserve-router")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        "http": (8000, "http"), "grpc": (8001, "grpc")}


def test_nginx_accepts_the_router_config(tmp_path):
    """nginx -t on files/nginx-router.conf as the chart renders it, with a loopback
    upstream file (Debian's nginx lacks the upstream `resolve` of the chart's image)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        pytest.fail("nginx not found: scripts/install-deps.sh installs nginx-light")
    cm = one(render(ci("router-nginx")), "ConfigMap", f"{RELEASE}-mmserve-router")
    conf_dir = tmp_path / "mmserve"
    conf_dir.mkdir()
    router = cm["data"]["default.conf"].replace("/etc/nginx/mmserve/", f"{conf_dir}/")
    # (nginx -t opens no socket: any port does.)
    router = router.replace("listen 8080;", "listen 127.0.0.1:65080;").replace(
        "listen 8081 http2;", "listen 127.0.0.1:65081 http2;")
    (tmp_path / "router.conf").write_text(router)
    upstream = cm["data"]["upstream.conf"]
    # The chart's own upstream file, made loopback: names to 127.0.0.1, no resolve/zone/resolver.
    upstream = re.sub(r"^resolver .*\n", "", upstream, flags=re.M)
    upstream = re.sub(r"^\s*zone .*\n", "", upstream, flags=re.M)
    upstream = re.sub(r"server \S+:(\d+) resolve", r"server 127.0.0.1:\1", upstream)
    (conf_dir / "upstream.conf").write_text(upstream)
    (conf_dir / "hot-models.map").write_text(cm["data"]["hot-models.map"])
    main = tmp_path / "nginx.conf"
    main.write_text(f"""pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    client_body_temp_path {tmp_path}/cb; proxy_temp_path {tmp_path}/p;
    fastcgi_temp_path {tmp_path}/f; uwsgi_temp_path {tmp_path}/u; scgi_temp_path {tmp_path}/s;
    include {tmp_path}/router.conf;
}}
""")
    r = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(main)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # And it can fail: an upstream file without the hashed group.
    (conf_dir / "upstream.conf").write_text("upstream mmserve_replicas { bogus_directive; }\n")
    r = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(main)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0


def _envoy(objs):
    cm = one(objs, "ConfigMap", f"{RELEASE}-mmserve-router")
    return yaml.safe_load(cm["data"]["envoy.yaml"]), cm["data"]["envoy.yaml"]


def test_envoy_router_ring_hash():
    objs = render(ci("router-envoy"))
    assert workload(objs)["kind"] == "Deployment"  # no StatefulSet needed: DNS lists the pods
    one(objs, "HorizontalPodAutoscaler")
    config, text = _envoy(objs)
    assert "__MMSERVE_HOT_MODELS__" not in text and "@@MMSERVE_EDIT" not in text
    headless = f"{RELEASE}-mmserve-headless.{NAMESPACE}.svc.cluster.local"
    one(objs, "Service", f"{RELEASE}-mmserve-headless")
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert set(clusters) == {"mmserve_http", "mmserve_grpc"}
    for name, port in (("mmserve_http", 8000), ("mmserve_grpc", 8001)):
        c = clusters[name]
        assert c["lb_policy"] == "RING_HASH" and "type" not in c
        # Strict DNS (every address a replica) through the DNS cluster extension.
        dns = c["cluster_type"]
        assert dns["name"] == "envoy.cluster.dns"
        assert dns["typed_config"]["all_addresses_in_single_endpoint"] is False
        (ep,) = c["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert ep["endpoint"]["address"]["socket_address"] == {"address": headless, "port_value": port}
        assert c["health_checks"][0]["http_health_check"]["path"] == "/v2/health/ready"
    assert "http2_protocol_options" in str(clusters["mmserve_grpc"]["typed_extension_protocol_options"])
    (listener,) = config["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 8080
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]

    def route_for(path, grpc=False, headers=()):
        for r in routes:
            m = r["match"]
            if bool(m.get("grpc") is not None) != grpc:
                continue
            if "path" in m and m["path"] != path:
                continue
            if "prefix" in m and not path.startswith(m["prefix"]):
                continue
            if "safe_regex" in m and not re.fullmatch(m["safe_regex"]["regex"], path):
                continue
            ok = True
            for h in m.get("headers", []):
                value = dict(headers).get(h["name"])
                ok = ok and value is not None and re.fullmatch(h["string_match"]["safe_regex"]["regex"], value)
            if ok:
                return r
        raise AssertionError(f"no route for {path}")

    def hash_key(route, path, headers=()):
        (policy,) = route["route"].get("hash_policy", [None])
        if policy is None:
            return None
        h = policy["header"]
        value = path if h["header_name"] == ":path" else dict(headers).get(h["header_name"])
        if value is None or "regex_rewrite" not in h:
            return value
        rw = h["regex_rewrite"]
        return re.sub(rw["pattern"]["regex"], rw["substitution"].replace("\\1", r"\1"), value)

    for path in ("/v2/models/mlp/infer", "/v2/models/mlp/versions/2/infer?x=1",
                 "/v2/repository/models/mlp/load", "/v2/models/mlp"):
        r = route_for(path)
        assert r["route"]["cluster"] == "mmserve_http"
        assert hash_key(r, path) == "mlp", path
    # Hot models and model-less requests: no hash (a random replica).
    assert hash_key(route_for("/v2/models/add_sub/infer"), "/v2/models/add_sub/infer") is None
    assert hash_key(route_for("/v2/health/ready"), "/v2/health/ready") is None
    assert hash_key(route_for("/v2/models/add_sub_python/infer"), "/v2/models/add_sub_python/infer") == "add_sub_python"
    # gRPC: the mm-model header.
    grpc_path = "/inference.GRPCInferenceService/ModelInfer"
    r = route_for(grpc_path, grpc=True, headers=[("mm-model", "mlp")])
    assert r["route"]["cluster"] == "mmserve_grpc"
    assert hash_key(r, grpc_path, [("mm-model", "mlp")]) == "mlp"
    assert "hash_policy" not in route_for(grpc_path, grpc=True, headers=[("mm-model", "image_cnn")])["route"]
    # Retries go to other replicas.
    for r in routes:
        if "route" in r:
            rp = r["route"]["retry_policy"]
            assert rp["num_retries"] == 2
            assert rp["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    # Values reach the file.
    config2, _ = _envoy(render(ci("router-envoy"), sets=("router.tries=4", "router.httpPort=8000",
                                                         "router.timeoutSeconds=30")))
    l2 = config2["static_resources"]["listeners"][0]
    assert l2["address"]["socket_address"]["port_value"] == 8000
    r2 = [r for r in l2["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
          ["virtual_hosts"][0]["routes"] if "route" in r]
    assert {r["route"]["retry_policy"]["num_retries"] for r in r2} == {3}
    assert {r["route"]["timeout"] for r in r2} == {"30s"}
    ports = {c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
             ["socket_address"]["port_value"] for c in config2["static_resources"]["clusters"]}
    assert ports == {"mmserve_http": 8000, "mmserve_grpc": 8001}
    # The shipped file stands alone too: it parses, with its placeholders in place.
    shipped = yaml.safe_load((CHART / "files" / "envoy-ring-hash.yaml").read_text())
    assert shipped["static_resources"]["clusters"][0]["lb_policy"] == "RING_HASH"


def _router_kind(values: Path):
    router = {**yaml.safe_load((CHART / "values.yaml").read_text())["router"],
              **((yaml.safe_load(values.read_text()) or {}).get("router") or {})}
    return router["kind"] if router["enabled"] else None


ENVOY_MODES = [f for f in CI_VALUES if _router_kind(f) == "envoy"]


def _envoy_configs(values, sets=()) -> list:
    """The envoy.yaml of each ConfigMap the chart renders."""
    return [o["data"]["envoy.yaml"] for o in render(values, sets=sets)
            if o["kind"] == "ConfigMap" and "envoy.yaml" in (o.get("data") or {})]


def _envoy_check(*paths, stdin=None):
    return subprocess.run([envoy_check(), *map(str, paths)], input=stdin, capture_output=True,
                          text=True, timeout=60)


def test_envoy_modes_are_the_values_files_that_render_an_envoy_config():
    assert ENVOY_MODES, "no values file in ci/ enables the Envoy router"
    for f in CI_VALUES:
        assert len(_envoy_configs(f)) == (f in ENVOY_MODES), f.name


@pytest.mark.parametrize("values", ENVOY_MODES, ids=lambda p: p.stem)
def test_envoy_accepts_the_router_config(values, tmp_path):
    """envoy-check (Envoy's v3 API, strict: unknown fields and unknown typed_config types fail;
    protoc-gen-validate's rules, inside every typed_config too; no deprecated field) on the
    rendered envoy.yaml, with the chart's values and with others."""
    variants = [(), ("router.hotModels=null", "router.tries=1", "router.timeoutSeconds=1",
                     "router.httpPort=9000", "service.httpPort=7000", "service.grpcPort=7001")]
    paths = []
    for i, sets in enumerate(variants):
        (text,) = _envoy_configs(values, sets)
        paths.append(tmp_path / f"{values.stem}-{i}.yaml")
        paths[-1].write_text(text)
    assert "__MMSERVE_HOT_MODELS__" in paths[1].read_text()  # no hot model: the placeholder stays
    r = _envoy_check(*paths)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [w for p in paths for w in (f"{p}:", "ok")]
    # The shipped file stands alone too (its placeholders are valid values).
    r = _envoy_check(CHART / "files" / "envoy-ring-hash.yaml")
    assert r.returncode == 0, r.stderr


def test_envoy_check_refuses_a_broken_router_config(tmp_path):
    """And the check can fail: each edit of the rendered config is refused, naming the file
    and the fault."""
    (text,) = _envoy_configs(ENVOY_MODES[0])
    good = tmp_path / "good.yaml"
    good.write_text(text)
    broken = {  # name: (original, replacement, what the error says)
        "misspelt-field": ("stat_prefix:", "stat_prefx:", 'unknown field "stat_prefx"'),
        "invalid-enum": ("lb_policy: RING_HASH", "lb_policy: RING_HASHH", '"RING_HASHH"'),
        "unknown-typed-config": ("v3.PreviousHostsPredicate", "v3.PreviousHostPredicate",
                                 "PreviousHostPredicate"),
        "rule-in-a-typed-config": ("stat_prefix: mmserve_router", 'stat_prefix: ""',
                                   "HttpConnectionManager.StatPrefix"),
        "rule-out-of-range": ("minimum_ring_size: 1024", "minimum_ring_size: 99999999",
                              "MinimumRingSize: value must be less than or equal to"),
        "deprecated-field": ("connect_timeout: 2s", "connect_timeout: 2s\n      dns_refresh_rate: 5s",
                             "deprecated field (envoy.config.cluster.v3.Cluster.dns_refresh_rate)"),
        "not-yaml": ("routes:", "routes: [", "yaml:"),
    }
    for name, (old, new, says) in broken.items():
        assert old in text, f"{name}: {old!r} is no longer in the rendered config"
        bad = tmp_path / f"{name}.yaml"
        bad.write_text(text.replace(old, new))
        r = _envoy_check(good, bad)
        assert r.returncode == 1, f"{name}: accepted\n{r.stdout}"
        assert r.stdout == f"{good}: ok\n", name
        assert f"{bad}: not a valid Envoy bootstrap: " in r.stderr and says in r.stderr, (name, r.stderr)
        assert str(good) not in r.stderr, name
    # Standard input: "-".
    r = _envoy_check("-", stdin=text)
    assert (r.returncode, r.stdout) == (0, "-: ok\n"), r.stderr
    r = _envoy_check("-", stdin=text.replace("RING_HASH", "RING_HASHH"))
    assert r.returncode == 1 and r.stderr.startswith("-: not a valid Envoy bootstrap: "), r.stderr


# ------------------------------------------- mmserve parses what the chart renders

def _binary() -> Path:
    for p in (os.environ.get("MMSERVE_RELEASE_BINARY"), os.environ.get("MMSERVE_BINARY"),
              ROOT / "build" / "release" / "mmserve"):
        if p and Path(p).exists():
            return Path(p)
    pytest.fail("no mmserve binary (build/release/mmserve): build it (make release)")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", str(d / "tls.key"),
                        "-out", str(d / "tls.crt")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    shutil.copy(d / "tls.crt", d / "ca.crt")
    return d


def _run_mode(values: Path, tmp_path: Path, tls_files: Path) -> dict:
    """Starts mmserve with the mode's rendered command line, waits until it is ready, sends
    SIGTERM and waits for its exit. Returns its arguments, log and exit status."""
    objs = render(values)
    repo = tmp_path / "models"
    repo.mkdir(parents=True)
    for name in ("add_sub", "mlp_classifier"):  # what explicit modes load at start
        (repo / name).symlink_to(ROOT / "examples" / "models" / name)
    tenants_file = tmp_path / "tenants.yaml"
    secret = [o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"].endswith("-tenants")]
    if secret:
        (content,) = secret[0]["stringData"].values()
        tenants_file.write_text(content.replace("/opt/mmserve/models", str(repo)))
    else:
        tenants_file.write_text("tenants:\n  - id: ops\n    api_keys: [sha256$00112233445566778899aabbccddeeff$"
                                + "0" * 64 + "]\n    role: admin\n")
    moved = {
        "model-repository": str(repo),
        "model-cache-dir": str(tmp_path / "cache"),
        "http-address": "127.0.0.1", "grpc-address": "127.0.0.1", "metrics-address": "127.0.0.1",
        "http-port": "0", "grpc-port": "0", "metrics-port": "0",
        "tenants": str(tenants_file),
        "tls-cert": str(tls_files / "tls.crt"), "tls-key": str(tls_files / "tls.key"),
        "tls-client-ca": str(tls_files / "ca.crt"),
        "model-cache-size": "64MiB",  # a size of the pod's volume, not of this disk
        "python-env": sys.prefix,  # the image's /opt/mmserve/python: this venv here
    }
    args = [str(_binary())]
    seen_repo = False
    for a in server_container(objs)["args"]:
        k, v = a[2:].split("=", 1)
        if k == "model-repository":
            if seen_repo:
                continue
            seen_repo = True
        args.append(f"--{k}={moved.get(k, v)}")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    log, ready = [], False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            log.append(line)
            if "mmserve is ready" in line:
                ready = True
                break
        if ready:
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=60)
            log.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            rest, _ = proc.communicate()
            log.append(rest)
    return {"args": args, "log": "".join(log), "ready": ready, "returncode": proc.returncode}


@pytest.fixture(scope="module")
def mode_runs(tmp_path_factory, tls_files):
    """Every mode's server run, all at once (each mostly waits: about 2 s from SIGTERM to
    its exit)."""
    from concurrent.futures import ThreadPoolExecutor
    for f in CI_VALUES:
        render(f)  # renders first (helm runs once per mode, not under the threads)
    with ThreadPoolExecutor(max_workers=len(CI_VALUES)) as pool:
        futures = {f.stem: pool.submit(_run_mode, f, tmp_path_factory.mktemp(f.stem), tls_files)
                   for f in CI_VALUES}
        return {k: fut.result() for k, fut in futures.items()}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_mmserve_accepts_the_rendered_flags(values, mode_runs):
    """The server starts with each mode's rendered command line (paths of the pod moved to
    temporary ones, remote repositories to a local one, ports to loopback ones the kernel
    picks), becomes ready, and stops cleanly on SIGTERM: no flag is misspelt or refused."""
    run = mode_runs[values.stem]
    assert run["ready"], f"{values.name}: mmserve did not get ready with {run['args'][1:]}:\n{run['log']}"
    assert run["returncode"] == 0 and "mmserve stopped" in run["log"], run["log"]
    if "--log-format=json" in run["args"]:
        assert all(l.startswith("{") for l in run["log"].splitlines() if l.strip()), run["log"]
