"""deploy/kserve/: every manifest is valid against KServe's own CRDs, and says
what mmserve serves.

The CRDs (their openAPIV3Schema) come from the KServe release that
scripts/install-deps.sh --test fetches into ~/.cache/mmserve/kserve-crds-VERSION/.
They are validated with jsonschema the way the API server would take them:

- x-kubernetes-int-or-string: an integer or a string;
- nullable: null is allowed;
- an object schema with `properties` and neither additionalProperties nor
  x-kubernetes-preserve-unknown-fields: unknown fields are errors here. The API
  server would silently drop them (pruning), so a misspelt field
  (`protocolVersion` for `protocolVersions`) would go unnoticed there;
- x-kubernetes-list-type set / map (with x-kubernetes-list-map-keys): no two
  items alike / with the same keys;
- x-kubernetes-map-type and formats (int32, int64, ...): nothing to check.

Then what KServe's webhooks and controller check, with the source they come
from (KServe v0.20.0), and what mmserve serves.
"""
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KSERVE_DIR = ROOT / "deploy" / "kserve"
INSTALL = "bash scripts/install-deps.sh --test"

# The model formats mmserve serves (docs/kserve.md): its backends' formats and
# the Triton repository as a whole.
MMSERVE_FORMATS = {"onnx", "triton", "pytorch", "python", "xgboost", "lightgbm", "sklearn", "mlflow"}
# One example InferenceService per format.
EXAMPLE_FORMATS = {"onnx", "triton", "pytorch", "python", "xgboost", "lightgbm", "sklearn", "mlflow"}

CRD_FILES = {
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
    "ClusterServingRuntime": "serving.kserve.io_clusterservingruntimes.yaml",
    "TrainedModel": "serving.kserve.io_trainedmodels.yaml",
}


def kserve_version():
    text = (ROOT / "scripts" / "install-deps.sh").read_text()
    m = re.search(r"^KSERVE_VERSION=(\S+)$", text, re.M)
    assert m, "scripts/install-deps.sh does not set KSERVE_VERSION"
    return m.group(1)


def crd_dir():
    cache = Path(os.environ.get("MMSERVE_CACHE", Path.home() / ".cache" / "mmserve"))
    return cache / f"kserve-crds-{kserve_version()}"


def load_yaml_all(path):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as f:
        return [d for d in yaml.load_all(f, Loader=loader) if d is not None]


# ------------------------------------------------- CRD schema -> JSON schema
def to_json_schema(s):
    """A Kubernetes structural schema as a JSON schema (see the module's doc)."""
    if not isinstance(s, dict):
        return s
    out = {k: v for k, v in s.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if "properties" in s:
        out["properties"] = {k: to_json_schema(v) for k, v in s["properties"].items()}
    if isinstance(s.get("items"), dict):
        out["items"] = to_json_schema(s["items"])
    if isinstance(s.get("additionalProperties"), dict):
        out["additionalProperties"] = to_json_schema(s["additionalProperties"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in s:
            out[key] = [to_json_schema(x) for x in s[key]]
    if "not" in s:
        out["not"] = to_json_schema(s["not"])
    if s.get("x-kubernetes-int-or-string") and "type" not in s and "anyOf" not in s:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if s.get("x-kubernetes-embedded-resource") and "properties" in out:
        for name in ("apiVersion", "kind"):
            out["properties"].setdefault(name, {"type": "string"})
        out["properties"].setdefault("metadata", {"type": "object"})
    if ("properties" in s and "additionalProperties" not in s
            and not s.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if s.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if s.get("x-kubernetes-list-type") == "map" and s.get("x-kubernetes-list-map-keys"):
        out["listMapKeys"] = list(s["x-kubernetes-list-map-keys"])
    return out


def _list_map_keys(validator, keys, instance, schema):
    if not validator.is_type(instance, "array"):
        return
    seen = set()
    for item in instance:
        if isinstance(item, dict):
            key = tuple(repr(item.get(k)) for k in keys)
            if key in seen:
                yield jsonschema.ValidationError(
                    f"two items with the same {'/'.join(keys)} {key} (x-kubernetes-list-type: map)")
            seen.add(key)


Validator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"listMapKeys": _list_map_keys})


@pytest.fixture(scope="module")
def crds():
    d = crd_dir()
    missing = [f for f in CRD_FILES.values() if not (d / f).is_file()]
    if missing:
        pytest.fail(f"KServe's CRDs are not in {d} (missing {', '.join(missing)}): "
                    f"run `{INSTALL}` (it fetches them once)", pytrace=False)
    schemas = {}
    for kind, fname in CRD_FILES.items():
        (crd,) = load_yaml_all(d / fname)
        assert crd["spec"]["names"]["kind"] == kind
        group = crd["spec"]["group"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = to_json_schema(version["schema"]["openAPIV3Schema"])
                Validator.check_schema(schema)
                schemas[(f"{group}/{version['name']}", kind)] = (schema, crd["spec"]["scope"])
    return schemas


def manifests():
    """(relative path, index, object) for every object under deploy/kserve."""
    found = []
    for path in sorted(KSERVE_DIR.rglob("*.yaml")):
        for i, obj in enumerate(load_yaml_all(path)):
            found.append((str(path.relative_to(ROOT)), i, obj))
    return found


MANIFESTS = manifests()


def objects(kind, under=""):
    return [(p, o) for p, _, o in MANIFESTS if o.get("kind") == kind and p.startswith(under)]


def test_the_manifests_are_there():
    kinds = {o.get("kind") for _, _, o in MANIFESTS}
    assert {"ClusterServingRuntime", "ServingRuntime", "InferenceService", "TrainedModel"} <= kinds
    assert (KSERVE_DIR / "cluster-serving-runtime.yaml").is_file()
    assert (KSERVE_DIR / "serving-runtime.yaml").is_file()
    assert (KSERVE_DIR / "serving-runtime-multimodel.yaml").is_file()


@pytest.mark.parametrize("path,index,obj", MANIFESTS,
                         ids=[f"{p}#{i}" for p, i, _ in MANIFESTS])
def test_valid_against_kserve_crd(crds, path, index, obj):
    key = (obj.get("apiVersion"), obj.get("kind"))
    assert key in crds, f"{path}: {key} is no kind KServe serves ({sorted(crds)})"
    schema, scope = crds[key]
    errors = sorted(Validator(schema).iter_errors(obj), key=lambda e: list(e.absolute_path))
    assert not errors, f"{path}:\n" + "\n".join(
        f"  {'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)
    # What the API server checks of every object: a DNS-1123 subdomain name,
    # and no namespace on a cluster-scoped one (apply -n gives the namespace).
    name = obj["metadata"]["name"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name), name
    assert len(name) <= 253
    if scope == "Cluster":
        assert "namespace" not in obj["metadata"], f"{path}: a {obj['kind']} has no namespace"


def test_the_validator_catches_mistakes(crds):
    """The checks above have teeth: a misspelt field, a wrong type, a missing
    required field and two ports alike (a list-type map) are each an error."""
    schema, _ = crds[("serving.kserve.io/v1alpha1", "ClusterServingRuntime")]
    (good,) = [o for p, o in objects("ClusterServingRuntime")]
    assert not list(Validator(schema).iter_errors(good))

    def errors(mutate):
        import copy
        bad = copy.deepcopy(good)
        mutate(bad)
        return list(Validator(schema).iter_errors(bad))

    assert errors(lambda o: o["spec"].update(protocolVersion=["v2"]))
    assert errors(lambda o: o["spec"]["supportedModelFormats"][0].update(priority="high"))
    assert errors(lambda o: o["spec"]["supportedModelFormats"][0].pop("name"))
    port = {"name": "h2c", "containerPort": 9000, "protocol": "TCP"}
    assert not errors(lambda o: o["spec"]["containers"][0].update(ports=[port]))
    assert errors(lambda o: o["spec"]["containers"][0].update(ports=[port, dict(port, name="grpc")]))
    assert errors(lambda o: o["spec"]["containers"][0].update(args="--http-port 8080"))
    # int-or-string: a quantity may be either.
    assert not errors(lambda o: o["spec"]["containers"][0]["resources"]["limits"].update(cpu=2))


# ------------------------------------------------------- the runtimes' content
RUNTIMES = objects("ClusterServingRuntime") + objects("ServingRuntime")


@pytest.mark.parametrize("path,rt", RUNTIMES, ids=[p for p, _ in RUNTIMES])
def test_runtime_declares_what_mmserve_serves(path, rt):
    spec = rt["spec"]
    names = {f["name"] for f in spec["supportedModelFormats"]}
    assert names <= MMSERVE_FORMATS, f"{path} declares formats mmserve does not serve: {names - MMSERVE_FORMATS}"
    assert names == MMSERVE_FORMATS, f"{path} leaves out {MMSERVE_FORMATS - names}"
    assert spec["protocolVersions"] == ["v2", "grpc-v2"]
    # multiModel marks ModelMesh runtimes in KServe; the agent's mode needs none.
    assert not spec.get("multiModel")
    for f in spec["supportedModelFormats"]:
        if f.get("autoSelect"):
            # No priority: never ties with a KServe runtime's (the
            # ServingRuntime webhook refuses equal priorities for the same
            # format), and never displaces one.
            assert "priority" not in f, f
    (c,) = spec["containers"]
    assert c["name"] == "kserve-container"  # KServe merges the InferenceService's container into it by this name
    assert c["image"] == "mmserve:latest"
    args = c["args"]

    def arg(flag):
        assert args.count(flag) == 1, f"{path}: {flag} given {args.count(flag)} times"
        return args[args.index(flag) + 1]

    assert arg("--model-repository") == "/mnt/models"
    assert arg("--http-port") == "8080"  # KServe's HTTP port, the agent's localhost:8080
    assert arg("--grpc-port") == "9000"  # KServe's gRPC port
    assert arg("--http-address") == "0.0.0.0"
    assert arg("--grpc-address") == "0.0.0.0"
    assert arg("--metrics-port") == spec["annotations"]["prometheus.kserve.io/port"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert "ports" not in c  # Knative takes one port; a gRPC InferenceService sets h2c 9000
    server_type = rt["metadata"].get("annotations", {}).get("serving.kserve.io/server-type")
    mode_flags = [a for a in args if a.startswith("--model-control-mode")]
    if server_type == "tritonserver":
        # KServe then appends --model-control-mode=explicit to an InferenceService
        # without a storageUri (SetTritonDefaults), and mmserve refuses the
        # option twice: the runtime leaves it out.
        assert not mode_flags, f"{path}: {mode_flags}"
    else:
        assert server_type is None
    if rt["metadata"]["name"] == "mmserve-multimodel":
        assert arg("--model-control-mode") == "explicit"
        assert arg("--load-model") == "*"
        assert "--load-on-demand=false" in args
        assert "--model-name" not in args  # /mnt/models holds the agent's model folders
    else:
        # Single-model mode: a /mnt/models that holds one model is served as
        # the InferenceService (KServe replaces {{.Name}}).
        assert arg("--model-name") == "{{.Name}}"
        # A model that failed to load keeps the pod unready (Triton's default).
        assert "--strict-readiness=true" in args


def test_namespaced_runtime_is_the_cluster_one():
    (cluster,) = [o for _, o in objects("ClusterServingRuntime")]
    namespaced = {o["metadata"]["name"]: o for _, o in objects("ServingRuntime")}
    assert namespaced["mmserve"]["spec"] == cluster["spec"]
    assert namespaced["mmserve"]["metadata"] == cluster["metadata"]


# ------------------------------------------------------------ the examples
# KServe v0.20.0 webhooks: pkg/apis/serving/v1beta1/inference_service_validation.go
# (IsvcNameFmt), pkg/apis/serving/v1alpha1/trainedmodel_webhook.go (TmNameFmt,
# storageUri protocols from pkg/agent/storage/provider.go).
ISVC_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
TM_NAME = re.compile(r"[a-zA-Z0-9_-]+")
ISVC_STORAGE_PREFIXES = ("gs://", "s3://", "pvc://", "file://", "https://", "http://", "hdfs://",
                         "webhdfs://", "oci://", "oci+native://", "hf://")
AGENT_STORAGE_PREFIXES = ("s3://", "gs://", "https://", "http://")

ISVCS = objects("InferenceService", "deploy/kserve/examples")


def runtime_formats(name):
    for _, rt in RUNTIMES:
        if rt["metadata"]["name"] == name:
            return {(f["name"], f.get("version")) for f in rt["spec"]["supportedModelFormats"]}
    raise AssertionError(f"no runtime {name} in deploy/kserve")


@pytest.mark.parametrize("path,isvc", ISVCS, ids=[p for p, _ in ISVCS])
def test_example_inference_service(path, isvc):
    assert ISVC_NAME.fullmatch(isvc["metadata"]["name"])
    model = isvc["spec"]["predictor"]["model"]
    fmt = model["modelFormat"]
    formats = runtime_formats(model["runtime"])
    # The runtime must declare the format (and version, when one is given):
    # RuntimeSupportsModel in pkg/apis/serving/v1beta1/predictor_model.go.
    assert fmt["name"] in {n for n, _ in formats}, f"{path}: {model['runtime']} does not declare {fmt}"
    if "version" in fmt:
        assert (fmt["name"], fmt["version"]) in formats, f"{path}: {model['runtime']} does not declare {fmt}"
    assert model["protocolVersion"] in ("v2", "grpc-v2")
    if model["protocolVersion"] == "grpc-v2":
        assert model["ports"] == [{"name": "h2c", "containerPort": 9000, "protocol": "TCP"}]
    if "storageUri" in model:
        assert model["storageUri"].startswith(ISVC_STORAGE_PREFIXES)
        assert model["runtime"] == "mmserve"
    else:
        # Multi-model: KServe admits TrainedModels against the memory limit.
        assert model["runtime"] == "mmserve-multimodel"
        assert "memory" in model["resources"]["limits"]


def test_one_example_per_format():
    single = {o["spec"]["predictor"]["model"]["modelFormat"]["name"]
              for _, o in ISVCS if "storageUri" in o["spec"]["predictor"]["model"]}
    assert single == EXAMPLE_FORMATS


def test_example_trained_models():
    tms = objects("TrainedModel", "deploy/kserve/examples")
    assert len(tms) >= 2
    hosts = {o["metadata"]["name"]: o for _, o in ISVCS}
    for path, tm in tms:
        assert TM_NAME.fullmatch(tm["metadata"]["name"])
        isvc = hosts[tm["spec"]["inferenceService"]]
        assert "storageUri" not in isvc["spec"]["predictor"]["model"], "a TrainedModel needs a multi-model InferenceService"
        assert tm["spec"]["model"]["storageUri"].startswith(AGENT_STORAGE_PREFIXES)
        assert tm["spec"]["model"]["framework"] in MMSERVE_FORMATS
