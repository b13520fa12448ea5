#!/usr/bin/env bash
# Lays out an installed mmserve under DEST (the container image's /opt/mmserve):
#   bin/   mmserve, mmserve-python-worker, libmmserve_pytorch.so (found beside
#          the binary)
#   lib/   onnxruntime/, libtorch/ (torch/lib and the two CUDA libraries its
#          RPATH finds), fil/ (XGBoost, LightGBM, Treelite as in their wheels,
#          where the FIL backend looks when the build's path is absent)
#   models/  the example repository
# from a release build folder and the libraries scripts/install-deps.sh
# fetched (build/*.env name them). The image finds onnxruntime and libtorch
# through LD_LIBRARY_PATH (deploy/Dockerfile), whatever the build's RUNPATH.
# Usage: deploy/container/stage.sh BUILD_DIR DEST
set -euo pipefail
BUILD=${1:?usage: stage.sh BUILD_DIR DEST}
DEST=${2:?usage: stage.sh BUILD_DIR DEST}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

env_value() {  # env_value FILE NAME
  sed -n "s/^$2=//p" "$1" | head -1
}
need() {
  [ -e "$1" ] || { echo "stage.sh: $1 is missing: $2" >&2; exit 1; }
}

for f in mmserve mmserve-python-worker libmmserve_pytorch.so; do
  need "$BUILD/$f" "build it first (make release)"
done
for f in onnxruntime.env libtorch.env fil.env; do
  need "$ROOT/build/$f" "run scripts/install-deps.sh first"
done
ort_lib=$(env_value "$ROOT/build/onnxruntime.env" ORT_LIBRARY)
torch_root=$(env_value "$ROOT/build/libtorch.env" TORCH_ROOT)   # .../libtorch-V/torch
fil_xgb=$(env_value "$ROOT/build/fil.env" FIL_XGBOOST_LIBRARY)  # .../fil-libs-.../xgboost/lib/libxgboost.so
need "$ort_lib" "ONNX Runtime (build/onnxruntime.env; a system ONNX Runtime is not staged)"
need "$torch_root/lib/libtorch_cpu.so" "libtorch (build/libtorch.env)"
need "$fil_xgb" "the FIL libraries (build/fil.env)"
fil_dir=$(dirname "$(dirname "$(dirname "$fil_xgb")")")

rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/lib/onnxruntime" "$DEST/lib/libtorch/torch/lib" "$DEST/lib/fil"
cp "$BUILD/mmserve" "$BUILD/mmserve-python-worker" "$BUILD/libmmserve_pytorch.so" "$DEST/bin/"
strip --strip-unneeded "$DEST/bin/mmserve" "$DEST/bin/mmserve-python-worker" \
  "$DEST/bin/libmmserve_pytorch.so"
cp -L "$ort_lib" "$DEST/lib/onnxruntime/libonnxruntime.so.1"
cp -L "$torch_root"/lib/libtorch_cpu.so "$torch_root"/lib/libc10.so "$torch_root"/lib/libgomp.so.1 \
  "$DEST/lib/libtorch/torch/lib/"
cp -rL "$(dirname "$torch_root")/nvidia" "$DEST/lib/libtorch/"
(cd "$fil_dir" && tar --exclude=.complete -cf - .) | tar -C "$DEST/lib/fil" -xf -
cp -r "$ROOT/examples/models" "$DEST/models"
echo "staged $(du -sh "$DEST" | cut -f1) in $DEST"
