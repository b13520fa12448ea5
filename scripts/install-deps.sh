#!/usr/bin/env bash
# Installs everything mmserve needs to build, serve and test, idempotently:
#   1. Debian packages (compilers, ccache, Boost, protobuf, simdjson, spdlog, CLI11, gtest, nginx, wrk...)
#   2. ONNX Runtime: a system install if CMake or pkg-config finds one, else the
#      Linux x64 library from the npm package onnxruntime-node and the C/C++
#      headers from Debian 13's libonnxruntime-dev, cached under ~/.cache/mmserve.
#   3. A Python virtual environment in .venv/ with the test tools.
#   4. Triton's perf_analyzer (from the tritonclient 2.41 wheel), cached under
#      ~/.cache/mmserve, for the smoke test against mmserve.
#   5. libtorch for the PyTorch backend: libtorch_cpu, c10 and the headers out
#      of PyPI's torch wheel (docs/pytorch.md says why), cached under
#      ~/.cache/mmserve.
#   6. With --test (make test): PyTorch for Python too, to make the test
#      models and check outputs against torch. 5 GB (torch's CUDA set), so
#      cached under ~/.cache/mmserve and added to .venv by a .pth file.
#   7. The tree-model libraries of the FIL backend (XGBoost, LightGBM,
#      Treelite) out of their PyPI wheels, cached under ~/.cache/mmserve
#      (docs/fil.md says why). With --test, the same versions for Python in
#      .venv, and XGBoost 3.0.5 apart, to write legacy-binary test models.
#   8. With --test: helm (built from the Go module proxy, in the background
#      from step 3 on), the ServiceMonitor CRD and an Envoy config validator
#      (tests/deploy/envoy_check, built alongside helm), for the chart's checks.
#   9. With --test: KServe's CRDs from its Go module, for deploy/kserve.
#  10. With --test: Podman, runc and mmdebstrap (with step 1), and the
#      image's base and runtime layers, built ahead from step 3 on.
# A second run finds everything in place and returns in about a second.
set -euo pipefail

WITH_TEST=0
for arg in "$@"; do
  case $arg in
    --test) WITH_TEST=1 ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MMSERVE_CACHE:-$HOME/.cache/mmserve}
ORT_VERSION=1.30.0
ORT_DIR=$CACHE/onnxruntime-$ORT_VERSION
STAMP_DIR=$ROOT/build/.stamps
mkdir -p "$CACHE" "$STAMP_DIR"

log() { printf '[install-deps] %s\n' "$*"; }

# ---------------------------------------------------------------- 1. Debian
DEB_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl ccache
  clang libclang-rt-14-dev clang-format
  libboost-dev libsimdjson-dev libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc
  libspdlog-dev libfmt-dev libcli11-dev libgtest-dev libgmock-dev
  nginx-light wrk libonnx-testdata
  python3-venv libb64-0d libssl-dev libyaml-cpp-dev libjemalloc-dev
  pybind11-dev python3-dev python3-numpy libpython3.11-dev libexpat1-dev zlib1g-dev
  prometheus-cpp-dev prometheus
  libarchive-dev unzip libcurl4-openssl-dev libnghttp2-dev
)
# With --test: Podman, runc and mmdebstrap for the container test (section 10;
# iptables for published ports); Chromium and its WebDriver for the web
# console's browser test (Selenium drives it headless); tmux for
# `mmserve ctl top`'s test.
CONTAINER_PACKAGES=(podman runc mmdebstrap iptables netavark aardvark-dns)
BROWSER_PACKAGES=(chromium chromium-driver tmux)
if [ "$WITH_TEST" = 1 ]; then
  DEB_PACKAGES+=("${CONTAINER_PACKAGES[@]}" "${BROWSER_PACKAGES[@]}")
fi
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# npm comes with Node.js; Debian's npm only where no Node.js is installed.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ----------------------------------------------------------- 2. ONNX Runtime
# Writes build/onnxruntime.env with ORT_INCLUDE_DIR and ORT_LIBRARY for CMake.
ORT_ENV=$ROOT/build/onnxruntime.env
system_ort() {
  if pkg-config --exists libonnxruntime 2>/dev/null; then
    local inc lib
    inc=$(pkg-config --variable=includedir libonnxruntime)
    lib=$(pkg-config --variable=libdir libonnxruntime)/libonnxruntime.so
    [ -f "$inc/onnxruntime/onnxruntime_cxx_api.h" ] && inc=$inc/onnxruntime
    if [ -f "$inc/onnxruntime_cxx_api.h" ] && [ -e "$lib" ]; then
      printf 'ORT_INCLUDE_DIR=%s\nORT_LIBRARY=%s\n' "$inc" "$lib" > "$ORT_ENV"
      return 0
    fi
  fi
  for d in /usr/local/lib/cmake/onnxruntime /usr/lib/x86_64-linux-gnu/cmake/onnxruntime /usr/lib/cmake/onnxruntime; do
    if [ -f "$d/onnxruntimeConfig.cmake" ]; then
      printf 'ORT_CMAKE_DIR=%s\n' "$d" > "$ORT_ENV"
      return 0
    fi
  done
  return 1
}

fetch_ort() {
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$ORT_DIR/lib" "$ORT_DIR/include"
  if [ ! -f "$ORT_DIR/lib/libonnxruntime.so.1" ]; then
    log "fetching libonnxruntime.so.1 from npm onnxruntime-node@$ORT_VERSION"
    (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
    tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
    cp "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT_DIR/lib/"
    ln -sf libonnxruntime.so.1 "$ORT_DIR/lib/libonnxruntime.so"
  fi
  if [ ! -f "$ORT_DIR/include/onnxruntime_cxx_api.h" ]; then
    log "fetching ONNX Runtime headers from Debian trixie's libonnxruntime-dev"
    local apt="$tmp/apt"
    mkdir -p "$apt/lists/partial" "$apt/archives/partial"
    local uri keyring
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    keyring=$(awk '/^Signed-By:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    : "${uri:=http://deb.debian.org/debian}"
    : "${keyring:=/usr/share/keyrings/debian-archive-keyring.gpg}"
    printf 'deb [signed-by=%s] %s trixie main\n' "$keyring" "$uri" > "$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::Archives=$apt/archives"
                -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    apt-get "${opts[@]}" update -qq
    (cd "$tmp" && apt-get "${opts[@]}" download libonnxruntime-dev >/dev/null)
    dpkg -x "$tmp"/libonnxruntime-dev_*.deb "$tmp/deb"
    local hdr
    hdr=$(dirname "$(find "$tmp/deb" -name onnxruntime_cxx_api.h | head -1)")
    cp -r "$hdr"/. "$ORT_DIR/include/"
  fi
  printf 'ORT_INCLUDE_DIR=%s\nORT_LIBRARY=%s\n' "$ORT_DIR/include" "$ORT_DIR/lib/libonnxruntime.so.1" > "$ORT_ENV"
}

if [ "${MMSERVE_FORCE_FETCH_ORT:-0}" != 1 ] && system_ort; then
  log "using system ONNX Runtime ($(head -1 "$ORT_ENV"))"
else
  fetch_ort
fi

# ------------------------------------------------------------ 3. Python venv
VENV=$ROOT/.venv
PY_REQS=$ROOT/scripts/requirements-test.txt
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
req_hash=$(sha256sum "$PY_REQS" | cut -c1-16)
if [ ! -f "$VENV/.installed-$req_hash" ]; then
  log "installing Python test tools"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$PY_REQS"
  rm -f "$VENV"/.installed-*
  touch "$VENV/.installed-$req_hash"
fi

# ------------------ 3b. Helm, the ServiceMonitor and PrometheusRule CRDs
# With --test: tests/deploy lints and renders the Helm chart (deploy/helm/mmserve)
# with helm, built once from the Go module proxy (Go >= 1.26; no GitHub
# download) into ~/.cache/mmserve/helm-VERSION/helm: about 2 minutes on 2
# cores. The ldflags are those of helm's Makefile (the version, and the
# Kubernetes version .Capabilities defaults to, from its client-go). The
# rendered ServiceMonitor and PrometheusRule are checked against the
# prometheus-operator CRDs' schemas, out of the same project's Go module (its
# example/ folder).
# The Envoy router's config is checked by tests/deploy/envoy_check (Envoy is
# in neither Debian nor PyPI): go-control-plane's Envoy API and its
# protoc-gen-validate rules, at the version in its go.mod, built into
# ~/.cache/mmserve/envoy-check-VERSION/envoy-check (again when its sources
# change): about a minute on 2 cores, once.
# The builds run in the background while the downloads of sections 4-7 go
# on (they are CPU, those mostly network), and are waited for at the end.
HELM_VERSION=3.21.4
HELM_K8S_MINOR=36  # helm 3.21's k8s.io/client-go v0.36
PROM_OPERATOR_VERSION=0.85.0
install_helm() {
  local dir=$CACHE/helm-$HELM_VERSION pkg=helm.sh/helm/v3
  local crd_dir=$CACHE/prometheus-operator-crds-$PROM_OPERATOR_VERSION crd
  local crds=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)
  local crds_missing=0
  for crd in "${crds[@]}"; do [ -f "$crd_dir/$crd" ] || crds_missing=1; done
  if [ ! -x "$dir/helm" ] || [ "$crds_missing" = 1 ]; then
    command -v go >/dev/null 2>&1 || { log "helm and the CRD need Go 1.26 or later (go on PATH)"; exit 1; }
  fi
  if [ ! -x "$dir/helm" ]; then
    log "building helm $HELM_VERSION from the Go module proxy (about 2 minutes, once)"
    rm -rf "$dir.partial"
    GOBIN=$dir.partial CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w \
      -X $pkg/internal/version.version=v$HELM_VERSION -X $pkg/internal/version.metadata= \
      -X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR \
      -X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR" \
      "$pkg/cmd/helm@v$HELM_VERSION"
    "$dir.partial/helm" version --short >/dev/null
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
  fi
  if [ "$crds_missing" = 1 ]; then
    log "fetching the ServiceMonitor and PrometheusRule CRDs (prometheus-operator v$PROM_OPERATOR_VERSION's Go module)"
    local src
    src=$(cd "$CACHE" && GOFLAGS=-mod=mod go mod download -json \
      "github.com/prometheus-operator/prometheus-operator@v$PROM_OPERATOR_VERSION" |
      "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    mkdir -p "$crd_dir"
    for crd in "${crds[@]}"; do
      cp "$src/example/prometheus-operator-crd/$crd" "$crd_dir/$crd.partial"
      mv "$crd_dir/$crd.partial" "$crd_dir/$crd"
    done
  fi
}
ENVOY_CHECK_SRC=$ROOT/tests/deploy/envoy_check
ENVOY_CHECK_VERSION=$(awk '$1 == "github.com/envoyproxy/go-control-plane/envoy" {print substr($2, 2)}' \
  "$ENVOY_CHECK_SRC/go.mod")
install_envoy_check() {
  local dir=$CACHE/envoy-check-$ENVOY_CHECK_VERSION src
  src=$(cat "$ENVOY_CHECK_SRC"/go.mod "$ENVOY_CHECK_SRC"/go.sum "$ENVOY_CHECK_SRC"/*.go | sha256sum | cut -c1-16)
  [ -x "$dir/envoy-check" ] && [ -f "$dir/.src-$src" ] && return 0
  command -v go >/dev/null 2>&1 || { log "the Envoy config validator needs Go 1.26 or later (go on PATH)"; exit 1; }
  log "building the Envoy config validator (go-control-plane $ENVOY_CHECK_VERSION, once)"
  rm -rf "$dir.partial"
  CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -C "$ENVOY_CHECK_SRC" -trimpath \
    -o "$dir.partial/envoy-check" .
  touch "$dir.partial/.src-$src"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
}
# h2spec, the HTTP/2 conformance suite the native gRPC transport is checked
# against (tests/integration/test_grpc_native.py): v2.2.1 from the Go module
# proxy, its dependencies pinned by tests/integration/h2spec/go.mod, built
# into ~/.cache/mmserve/h2spec-VERSION/h2spec (seconds, once).
H2SPEC_SRC=$ROOT/tests/integration/h2spec
install_h2spec() {
  local dir=$CACHE/h2spec-2.2.1 src
  src=$(cat "$H2SPEC_SRC"/go.mod "$H2SPEC_SRC"/go.sum | sha256sum | cut -c1-16)
  [ -x "$dir/h2spec" ] && [ -f "$dir/.src-$src" ] && return 0
  command -v go >/dev/null 2>&1 || { log "h2spec needs Go 1.26 or later (go on PATH)"; exit 1; }
  log "building h2spec 2.2.1 from the Go module proxy (once)"
  rm -rf "$dir.partial"
  CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -C "$H2SPEC_SRC" -trimpath \
    -o "$dir.partial/h2spec" github.com/summerwind/h2spec/cmd/h2spec
  touch "$dir.partial/.src-$src"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
}
HELM_PID=""
HELM_LOG=$STAMP_DIR/install-helm.log
if [ "$WITH_TEST" = 1 ]; then
  { install_helm; install_envoy_check; install_h2spec; } > "$HELM_LOG" 2>&1 &
  HELM_PID=$!
fi
WARM_PID=""
WARM_LOG=$STAMP_DIR/container-layers.log
if [ "$WITH_TEST" = 1 ] && command -v podman >/dev/null 2>&1; then
  "$ROOT/deploy/container/build-image.sh" --target python-env --tag localhost/mmserve-layers:warm \
    > "$WARM_LOG" 2>&1 &
  WARM_PID=$!
fi

# ------------------------------------------------------------ 4. perf_analyzer
# tritonclient wheels up to 2.4x carried Triton's perf_analyzer binary (the
# later PyPI package perf-analyzer 0.1.0 is a placeholder without one). It
# links libb64 (Debian, above) and libcudart.so.12, which comes from PyPI's
# nvidia-cuda-runtime-cu12: loaded at start, used only for CUDA shared memory.
PA_VERSION=2.41.0
PA_DIR=$CACHE/perf_analyzer-$PA_VERSION
if [ ! -x "$PA_DIR/perf_analyzer" ] || [ ! -f "$PA_DIR/libcudart.so.12" ]; then
  log "fetching perf_analyzer from the tritonclient $PA_VERSION wheel"
  tmp=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps --only-binary=:all: --platform manylinux1_x86_64 \
    -d "$tmp" "tritonclient==$PA_VERSION" "nvidia-cuda-runtime-cu12==12.3.101"
  mkdir -p "$PA_DIR.partial"
  "$VENV/bin/python" - "$tmp" "$PA_DIR.partial" <<'PY'
import glob, os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
wanted = {"/data/bin/perf_analyzer": "perf_analyzer", "/cuda_runtime/lib/libcudart.so.12": "libcudart.so.12"}
found = set()
for wheel in glob.glob(os.path.join(src, "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            for suffix, out in wanted.items():
                if name.endswith(suffix):
                    with z.open(name) as f, open(os.path.join(dst, out), "wb") as o:
                        o.write(f.read())
                    os.chmod(os.path.join(dst, out), 0o755)
                    found.add(out)
missing = set(wanted.values()) - found
if missing:
    sys.exit(f"not found in the wheels: {sorted(missing)}")
PY
  rm -rf "$tmp" "$PA_DIR"
  mv "$PA_DIR.partial" "$PA_DIR"
fi

# ------------------------------------------------------------ 5. libtorch
# Debian 12's libtorch 1.13 cannot load what PyTorch 2.x saves (newer
# operators; no FP16 on the CPU), so libtorch comes from PyPI's torch wheel
# (CUDA builds only there): torch/lib/{libtorch_cpu,libc10,libgomp} and
# torch/include, laid out as in site-packages, with the two small CUDA
# libraries libtorch_cpu.so needs at load (libcudart, libcupti; no GPU needed)
# where its RPATH looks ($ORIGIN/../../nvidia/cu13/lib). Writes
# build/libtorch.env (TORCH_ROOT) for CMake. MMSERVE_LIBTORCH_CUDA=1 also puts
# libtorch_cuda and CUDA's libraries beside it (links into section 6's install,
# 5 GB), for KIND_GPU instances on a machine with a GPU.
TORCH_VERSION=2.15.0
CUDA_RT_VERSION=13.2.86
TORCH_DIR=$CACHE/libtorch-$TORCH_VERSION
TORCH_ENV=$ROOT/build/libtorch.env
torch_wheel() {  # torch_wheel DIR: the torch wheel, downloaded into DIR
  "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$1" "torch==$TORCH_VERSION"
  ls "$1"/torch-"$TORCH_VERSION"-*.whl
}
if [ ! -f "$TORCH_DIR/torch/lib/libtorch_cpu.so" ]; then
  log "fetching libtorch from PyPI's torch $TORCH_VERSION wheel (539 MB, once)"
  tmp=$(mktemp -d)
  rm -rf "$TORCH_DIR.partial"
  mkdir -p "$TORCH_DIR.partial/torch/lib" "$TORCH_DIR.partial/nvidia/cu13/lib"
  wheel=$(torch_wheel "$tmp")
  unzip -q "$wheel" 'torch/lib/libtorch_cpu.so' 'torch/lib/libc10.so' 'torch/lib/libgomp.so.1' \
    'torch/include/*' -d "$TORCH_DIR.partial"
  "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$tmp/cuda" \
    "nvidia-cuda-runtime==$CUDA_RT_VERSION" "nvidia-cuda-cupti==$CUDA_RT_VERSION"
  for w in "$tmp"/cuda/*.whl; do
    unzip -q -o -j "$w" 'nvidia/cu13/lib/libcudart.so.13' 'nvidia/cu13/lib/libcupti.so.13' \
      -d "$TORCH_DIR.partial/nvidia/cu13/lib" 2>/dev/null || true
  done
  for f in libcudart.so.13 libcupti.so.13; do
    [ -f "$TORCH_DIR.partial/nvidia/cu13/lib/$f" ] || { log "no $f in the CUDA wheels"; exit 1; }
  done
  rm -rf "$tmp" "$TORCH_DIR"
  mv "$TORCH_DIR.partial" "$TORCH_DIR"
fi
printf 'TORCH_ROOT=%s\n' "$TORCH_DIR/torch" > "$TORCH_ENV"

# ------------------------------------------------- 6. PyTorch for the tests
# make test makes its TorchScript models with torch and checks the server's
# outputs against it. pip --target into the cache, then a .pth file puts it
# on .venv's path (after .venv's own packages). It is also where
# MMSERVE_LIBTORCH_CUDA=1 takes libtorch's CUDA half from.
TORCH_PY=$CACHE/torch-$TORCH_VERSION-py311
if [ "$WITH_TEST" = 1 ] || [ "${MMSERVE_LIBTORCH_CUDA:-0}" = 1 ]; then
  if [ ! -f "$TORCH_PY/.complete" ]; then
    log "installing PyTorch $TORCH_VERSION for Python into $TORCH_PY (5 GB, once)"
    rm -rf "$TORCH_PY.partial" "$TORCH_PY"
    "$VENV/bin/pip" install -q --no-compile --target "$TORCH_PY.partial" "torch==$TORCH_VERSION"
    touch "$TORCH_PY.partial/.complete"
    mv "$TORCH_PY.partial" "$TORCH_PY"
  fi
fi
if [ "$WITH_TEST" = 1 ]; then
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$TORCH_PY" > "$site/mmserve-torch.pth"
fi
# KIND_GPU: libtorch_cuda.so beside libtorch_cpu.so (the backend opens it at
# the first KIND_GPU instance) and CUDA's libraries where its RPATH looks.
if [ "${MMSERVE_LIBTORCH_CUDA:-0}" = 1 ] && [ ! -e "$TORCH_DIR/torch/lib/libtorch_cuda.so" ]; then
  log "linking libtorch's CUDA half and CUDA's libraries from $TORCH_PY"
  for f in libtorch_cuda.so libc10_cuda.so libtorch_cuda_linalg.so libtorch_nvshmem.so; do
    ln -sf "$TORCH_PY/torch/lib/$f" "$TORCH_DIR/torch/lib/$f"
  done
  for d in "$TORCH_PY"/nvidia/*/; do
    name=$(basename "$d")
    [ "$name" = cu13 ] && continue  # holds the two libraries libtorch_cpu needs already
    ln -sfn "$d" "$TORCH_DIR/nvidia/$name"
  done
  for f in "$TORCH_PY"/nvidia/cu13/lib/*; do
    [ -e "$TORCH_DIR/nvidia/cu13/lib/$(basename "$f")" ] || ln -s "$f" "$TORCH_DIR/nvidia/cu13/lib/"
  done
fi
# ------------------------------------------------------- 7. FIL tree libraries
# The FIL backend opens each framework's own library with dlopen at the first
# model that needs it (docs/fil.md): libxgboost, lib_lightgbm and libtreelite
# out of PyPI's wheels, laid out as in site-packages so that each library's
# RPATH ($ORIGIN/../../<name>.libs) finds the libgomp its wheel carries
# (lib_lightgbm takes the system's libgomp.so.1, from gcc). Writes
# build/fil.env (FIL_XGBOOST_LIBRARY, FIL_LIGHTGBM_LIBRARY,
# FIL_TREELITE_LIBRARY) for CMake: the backend's default paths.
FIL_XGBOOST_VERSION=3.2.0
FIL_LIGHTGBM_VERSION=4.7.0
FIL_TREELITE_VERSION=4.8.1
FIL_DIR=$CACHE/fil-libs-xgboost$FIL_XGBOOST_VERSION-lightgbm$FIL_LIGHTGBM_VERSION-treelite$FIL_TREELITE_VERSION
FIL_ENV=$ROOT/build/fil.env
if [ ! -f "$FIL_DIR/.complete" ]; then
  log "fetching the tree libraries from PyPI's xgboost-cpu, lightgbm and treelite wheels (10 MB, once)"
  tmp=$(mktemp -d)
  rm -rf "$FIL_DIR.partial"
  mkdir -p "$FIL_DIR.partial"
  "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$tmp" \
    "xgboost-cpu==$FIL_XGBOOST_VERSION" "lightgbm==$FIL_LIGHTGBM_VERSION" "treelite==$FIL_TREELITE_VERSION"
  for w in "$tmp"/*.whl; do
    unzip -q -o "$w" 'xgboost/lib/*' 'xgboost_cpu.libs/*' 'lightgbm/lib/*' 'treelite/lib/*' \
      'treelite.libs/*' -d "$FIL_DIR.partial" 2>/dev/null || [ $? = 11 ]  # 11: some patterns not in this wheel
  done
  for f in xgboost/lib/libxgboost.so lightgbm/lib/lib_lightgbm.so treelite/lib/libtreelite.so; do
    [ -f "$FIL_DIR.partial/$f" ] || { log "no $f in the wheels"; exit 1; }
  done
  touch "$FIL_DIR.partial/.complete"
  rm -rf "$tmp" "$FIL_DIR"
  mv "$FIL_DIR.partial" "$FIL_DIR"
fi
printf 'FIL_XGBOOST_LIBRARY=%s\nFIL_LIGHTGBM_LIBRARY=%s\nFIL_TREELITE_LIBRARY=%s\n' \
  "$FIL_DIR/xgboost/lib/libxgboost.so" "$FIL_DIR/lightgbm/lib/lib_lightgbm.so" \
  "$FIL_DIR/treelite/lib/libtreelite.so" > "$FIL_ENV"

# The tests make tree models with the frameworks themselves and compare the
# server's answers with their predict. XGBoost >= 3.1 can neither write nor
# read the legacy binary format (model_type "xgboost"), so 3.0.5 sits apart in
# the cache (pip --target; tests put it on PYTHONPATH in a subprocess).
if [ "$WITH_TEST" = 1 ]; then
  fil_py_stamp="$VENV/.fil-py-$FIL_XGBOOST_VERSION-$FIL_LIGHTGBM_VERSION-$FIL_TREELITE_VERSION"
  if [ ! -f "$fil_py_stamp" ]; then
    log "installing xgboost-cpu, lightgbm and treelite for Python into $VENV"
    "$VENV/bin/pip" install -q "xgboost-cpu==$FIL_XGBOOST_VERSION" \
      "lightgbm==$FIL_LIGHTGBM_VERSION" "treelite==$FIL_TREELITE_VERSION"
    touch "$fil_py_stamp"
  fi
  XGB_LEGACY_PY=$CACHE/xgboost-3.0.5-py
  if [ ! -f "$XGB_LEGACY_PY/.complete" ]; then
    log "installing xgboost-cpu 3.0.5 into $XGB_LEGACY_PY (legacy-binary test models)"
    rm -rf "$XGB_LEGACY_PY.partial" "$XGB_LEGACY_PY"
    "$VENV/bin/pip" install -q --no-compile --no-deps --target "$XGB_LEGACY_PY.partial" "xgboost-cpu==3.0.5"
    touch "$XGB_LEGACY_PY.partial/.complete"
    mv "$XGB_LEGACY_PY.partial" "$XGB_LEGACY_PY"
  fi
fi
# ----------------------------------------------- 8. Helm (started in 3b)
if [ -n "$HELM_PID" ]; then
  if ! wait "$HELM_PID"; then
    cat "$HELM_LOG" >&2
    log "building helm or the Envoy config validator, or fetching the ServiceMonitor CRD, failed (above)"
    exit 1
  fi
  cat "$HELM_LOG"
fi

# ------------------------------------------------------- 9. KServe's CRDs
# With --test: tests/deploy/test_kserve_manifests.py validates deploy/kserve/
# against KServe's CRDs (InferenceService, ServingRuntime,
# ClusterServingRuntime, TrainedModel), taken from the KServe Go module (the
# repository at its release tag, 61 MB) through the Go module proxy into
# ~/.cache/mmserve/kserve-crds-VERSION/, with the module's .info (the commit).
KSERVE_VERSION=v0.20.0
install_kserve_crds() {
  local dir=$CACHE/kserve-crds-$KSERVE_VERSION tmp crd
  [ -f "$dir/.complete" ] && return 0
  command -v go >/dev/null 2>&1 || { log "fetching KServe's CRDs needs Go (go on PATH)"; exit 1; }
  log "fetching KServe $KSERVE_VERSION's CRDs from the Go module proxy (61 MB, once)"
  tmp=$(mktemp -d)
  (cd "$tmp" && GOMODCACHE="$tmp/mod" GOFLAGS=-modcacherw go mod download "github.com/kserve/kserve@$KSERVE_VERSION")
  rm -rf "$dir.partial"
  mkdir -p "$dir.partial"
  for crd in inferenceservices servingruntimes clusterservingruntimes trainedmodels; do
    cp "$tmp/mod/github.com/kserve/kserve@$KSERVE_VERSION/config/crd/full/serving.kserve.io_$crd.yaml" "$dir.partial/"
  done
  cp "$tmp/mod/cache/download/github.com/kserve/kserve/@v/$KSERVE_VERSION.info" "$dir.partial/kserve.info"
  touch "$dir.partial/.complete"
  rm -rf "$tmp" "$dir"
  mv "$dir.partial" "$dir"
}
if [ "$WITH_TEST" = 1 ]; then install_kserve_crds; fi

# ------------------------------------------- 10. Container layers (from 3b)
# With --test: the image's base (mmdebstrap) and its runtime and Python
# layers, built ahead in the background (3b) while sections 4-7 download, so
# that tests/deploy/test_container.py finds them in Podman's cache. Not
# fatal: the test itself says why a machine cannot build or run containers.
if [ -n "$WARM_PID" ]; then
  if wait "$WARM_PID"; then
    log "container layers ready (deploy/Dockerfile up to python-env)"
  else
    log "could not build the container layers ahead (tests/deploy/test_container.py will say why):"
    tail -n 20 "$WARM_LOG" >&2
  fi
fi

log "ok"
