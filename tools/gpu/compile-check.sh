#!/usr/bin/env bash
# Dev machine without a GPU: builds the CUDA + NCCL addon exactly as the GPU machine does, so
# compile and link errors show up here instead of costing device time. Needs nvcc (CUDA 12.8+ /
# 13) and pip access to NVIDIA's cuBLAS and NCCL wheels (headers + libraries only; they are
# unpacked under $TK_CUDA_DEPS, default /tmp/tk-cuda-deps, and a toolkit root that merges them
# with nvcc's is made beside them). The result cannot run here (no driver), but it loads and
# refuses the cuda backend with the loader's message, which the script checks.
#   bash tools/gpu/compile-check.sh [build dir, default /tmp/tk-cuda-check]
set -euo pipefail
cd "$(dirname "$0")/../.."
deps=${TK_CUDA_DEPS:-/tmp/tk-cuda-deps}
build=${1:-/tmp/tk-cuda-check}
cuda=${CUDA_HOME:-/usr/local/cuda}
mkdir -p "$deps/whl"
for pkg in nvidia-cublas nvidia-nccl-cu13 nvidia-cudnn-cu13; do
  ls "$deps/whl" | grep -q "^${pkg//-/_}" ||
    python3 -m pip download --no-deps -q -d "$deps/whl" "$pkg" 2>&1 | grep -v -e Retrying -e ignored || true
done
root=$deps/root
if [ ! -e "$root/include/cudnn.h" ]; then # (re)made when a wheel is added
  rm -rf "$root" "$deps/unpacked"
  mkdir -p "$deps/unpacked" "$root/include" "$root/lib64"
  for w in "$deps"/whl/*.whl; do unzip -q -o "$w" -d "$deps/unpacked"; done
  ln -s "$cuda/bin" "$root/bin"
  for f in "$cuda"/include/* "$deps"/unpacked/nvidia/*/include/* "$deps"/unpacked/nvidia/*/*/include/*; do
    [ -e "$f" ] && ln -sf "$f" "$root/include/"
  done
  for f in "$(readlink -f "$cuda/lib64")"/* "$deps"/unpacked/nvidia/*/lib/* "$deps"/unpacked/nvidia/*/*/lib/*; do
    [ -e "$f" ] && ln -sf "$f" "$root/lib64/"
  done
  (cd "$root/lib64" && ln -sf libcublasLt.so.* libcublasLt.so 2>/dev/null; ln -sf libcublas.so.1* libcublas.so; ln -sf libnccl.so.2 libnccl.so)
fi
rm -rf "$build"
kernels=packages/kernels
t0=$SECONDS
cmake -S $kernels/native -B "$build" -DCMAKE_BUILD_TYPE=Release -DCUDAToolkit_ROOT="$root" \
  -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" -DCMAKE_CUDA_ARCHITECTURES="${TK_ARCH:-80;90}" \
  -DNODE_API_HEADERS_DIR="$PWD/$kernels/node_modules/node-api-headers/include" \
  -DNODE_ADDON_API_DIR="$PWD/$kernels/node_modules/node-addon-api" \
  -DTINYLLAMA_CUDA=ON -DTINYLLAMA_NCCL=ON -DNCCL_HOME="$root" >"$build.log" 2>&1
cmake --build "$build" -j "$(nproc)" >>"$build.log" 2>&1 || { grep -E "error" "$build.log" | head -30; exit 1; }
echo "built in $((SECONDS - t0)) s: $(cat "$build/backends.json")"
LD_LIBRARY_PATH=$root/lib64 TINYLLAMA_KERNELS_BUILD_DIR=$build node --input-type=module -e "
const m = await import('./$kernels/dist/index.js');
try { await m.loadBackend('cuda'); console.log('cuda backend loaded (a GPU is present)'); }
catch (e) { if (!/cannot start|no CUDA device/.test(e.message)) throw e; console.log('loads; no GPU here, as expected: ' + e.message.split('.')[0]); }
"
