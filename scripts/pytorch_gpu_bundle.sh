#!/usr/bin/env bash
# Makes a bundle for checking the PyTorch backend on a GPU machine that has
# its own PyTorch (with CUDA) but none of mmserve's build dependencies and no
# network (scripts/pytorch_gpu_check.py runs it there):
#   OUT/bin/mmserve, OUT/bin/libmmserve_pytorch.so   built here against the
#       headers of PyPI's torch wheel of that machine's version (libtorch's
#       C++ ABI changes between versions), without the Python and ONNX
#       Runtime backends;
#   OUT/lib/   the Debian libraries mmserve links (not glibc, libstdc++ or
#       libtorch: the machine's own are used).
# Usage: scripts/pytorch_gpu_bundle.sh TORCH_VERSION OUT   (e.g. 2.11.0 .gpu)
# On the machine: LD_LIBRARY_PATH=OUT/lib:<its torch>/lib \
#   python3 scripts/pytorch_gpu_check.py OUT/bin/mmserve
set -euo pipefail
VERSION=${1:?usage: $0 TORCH_VERSION OUT}
OUT=${2:?usage: $0 TORCH_VERSION OUT}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MMSERVE_CACHE:-$HOME/.cache/mmserve}
TORCH=$CACHE/libtorch-headers-$VERSION/torch
BUILD=${MMSERVE_GPU_BUILD:-$ROOT/build/gpu-bundle-$VERSION}  # the build folder
if [ ! -f "$TORCH/lib/libtorch_cpu.so" ]; then
  tmp=$(mktemp -d)
  "$ROOT/.venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$tmp" "torch==$VERSION"
  rm -rf "$TORCH"
  mkdir -p "$(dirname "$TORCH")"
  unzip -q "$tmp"/torch-"$VERSION"-*.whl 'torch/lib/libtorch_cpu.so' 'torch/lib/libc10.so' \
    'torch/include/*' -d "$(dirname "$TORCH")"
  rm -rf "$tmp"
fi
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTORCH_ROOT="$TORCH" \
  -DMMSERVE_BACKEND_PYTHON=OFF -DMMSERVE_BACKEND_ONNXRUNTIME=OFF -DMMSERVE_TEST_BACKENDS=OFF \
  -DMMSERVE_FUZZ=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target mmserve
rm -rf "$OUT/bin" "$OUT/lib"
mkdir -p "$OUT/bin" "$OUT/lib"
cp "$BUILD/mmserve" "$BUILD/libmmserve_pytorch.so" "$OUT/bin/"
strip "$OUT"/bin/*
{ ldd "$BUILD/mmserve"; LD_LIBRARY_PATH=$TORCH/lib ldd "$BUILD/libmmserve_pytorch.so"; } |
  awk '/=> \//{print $3}' | sort -u |
  grep -v -E '/(libc|libm|libpthread|libdl|librt|libgcc_s|libstdc\+\+|ld-linux-x86-64)\.so|libtorch|libc10|libgomp|libcudart|libcupti' |
  while read -r lib; do cp -L "$lib" "$OUT/lib/"; done
echo "bundle in $OUT: $(du -sh "$OUT" | cut -f1)"
