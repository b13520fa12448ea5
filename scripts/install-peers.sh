#!/usr/bin/env bash
# Installs the peer servers the benchmarks compare mmserve with, idempotently,
# under ~/.cache/mmserve (not part of `make test`; bench/python_peer.sh calls it):
#   Triton's tritonserver with its Python backend, from PyPI's nvidia-pytriton
#   wheel (PyTriton ships both): a virtual environment pytriton-venv, and a
#   backend folder triton-backends/python holding the Python backend and the
#   stub for this machine's Python 3.11 (PyTriton keeps one stub per Python
#   version aside), and xgboost for the FIL benchmark's Triton row. It runs on
#   a CPU-only machine: its CUDA runtime comes in the wheel's
#   nvidia_pytriton.libs (LD_LIBRARY_PATH), and CUDA/DCGM/NVML errors at start
#   are only logged.
# The stub's embedded Python ignores PYTHONPATH, and its sys.path starts with
# '' (the working directory): run tritonserver from TRITON_SITE, the venv's
# site-packages, and models import the venv's packages (numpy, scikit-learn).
# Prints, on its last line, the variables to run it with:
#   TRITON_BIN=... TRITON_LIBS=... TRITON_BACKENDS=... TRITON_SITE=...
# A second run finds everything in place and returns at once.
set -euo pipefail
CACHE=${MMSERVE_CACHE:-$HOME/.cache/mmserve}
PYTRITON_VERSION=0.7.0
VENV=$CACHE/pytriton-$PYTRITON_VERSION-venv
BACKENDS=$CACHE/triton-backends-$PYTRITON_VERSION
log() { printf '[install-peers] %s\n' "$*" >&2; }

PY=/usr/bin/python3.11
[ -x "$PY" ] || { log "needs Debian's python3.11 (the stub embeds it)"; exit 2; }
# The packages the example Python models import, at the versions mmserve's
# .venv has (scripts/requirements-test.txt), with numpy 1.x: Triton's stub
# reads numpy arrays through numpy 1's ABI (with numpy 2 it sizes outputs
# wrongly: "output tensor shape does not match size of output").
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL_PACKAGES=$(grep -E '^(scikit-learn|joblib)==' "$ROOT/scripts/requirements-test.txt" | tr '\n' ' ')
STAMP="$VENV/.installed-$(echo "$PYTRITON_VERSION $MODEL_PACKAGES" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  log "installing nvidia-pytriton $PYTRITON_VERSION and $MODEL_PACKAGES into $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q "nvidia-pytriton==$PYTRITON_VERSION" $MODEL_PACKAGES "numpy<2"
  touch "$STAMP"
fi
# bench/fil.sh's Triton row: PyPI's nvidia-pytriton carries no FIL backend (its
# tritonserver/backends/ holds only python), so Triton's Python backend runs the
# same XGBoost model with xgboost itself, the version whose library mmserve's
# FIL backend opens (scripts/install-deps.sh, section 7). Its own stamp: adding
# it does not reinstall the rest.
XGBOOST_PEER=xgboost-cpu==3.2.0
if [ ! -f "$VENV/.installed-$XGBOOST_PEER" ]; then
  log "installing $XGBOOST_PEER into $VENV"
  "$VENV/bin/pip" install -q "$XGBOOST_PEER" "numpy<2"
  touch "$VENV/.installed-$XGBOOST_PEER"
fi
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
SERVER=$SITE/pytriton/tritonserver
LIBS=$SITE/nvidia_pytriton.libs
STUB=$SERVER/python_backend_stubs/3.11/triton_python_backend_stub
if [ ! -x "$BACKENDS/python/triton_python_backend_stub" ]; then
  [ -x "$STUB" ] || { log "no Python 3.11 stub in the wheel: $STUB"; exit 2; }
  mkdir -p "$BACKENDS/python"
  cp "$SERVER/backends/python/libtriton_python.so" \
     "$SERVER/backends/python/triton_python_backend_utils.py" "$STUB" "$BACKENDS/python/"
fi
echo "TRITON_BIN=$SERVER/bin/tritonserver TRITON_LIBS=$LIBS TRITON_BACKENDS=$BACKENDS TRITON_SITE=$SITE"
