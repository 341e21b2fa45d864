#!/usr/bin/env bash
# Configures and builds the CUDA addon from scratch on a GPU machine, for every GPU script
# (run.sh, session.sh, run-distributed.sh, tools/bench/eval/run-gpu.sh, tools/compare/*/run-gpu.sh):
# one place for the CMake flags. Before it, four of the six did not pass the directory of the
# cuDNN headers that PyTorch's wheel installs (the lent H200s have no system cudnn.h), so run on
# their own they built an addon without cuDNN attention, serving it with the mma kernels.
#   bash tools/gpu/build-kernels.sh <build dir> <log file> [extra CMake flags, e.g. -DTINYLLAMA_NCCL=ON]
# From the repository root, after .gpu/setup.sh (Node-API headers under .gpu/headers). TK_ARCH:
# CUDA architectures (default 90); TK_BUILD_TIMEOUT: seconds for the compile (default 300).
# Appends CMake's output to the log; exits non-zero when configure or compile fails.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: build-kernels.sh <build dir> <log file> [cmake flags...]" >&2; exit 2; }
build=$1
log=$2
shift 2
# always from scratch: a warm machine keeps /tmp, and carried files can look older than objects
rm -rf "$build"
cmake -S packages/kernels/native -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="${TK_ARCH:-90}" \
  -DNODE_API_HEADERS_DIR="$PWD/.gpu/headers/node-api-headers" \
  -DNODE_ADDON_API_DIR="$PWD/.gpu/headers/node-addon-api" -DTINYLLAMA_CUDA=ON \
  -DCUDNN_INCLUDE_DIR="$(bash tools/gpu/cudnn-include-dir.sh)" \
  "$@" >>"$log" 2>&1 &&
  timeout "${TK_BUILD_TIMEOUT:-300}" cmake --build "$build" -j "$(nproc)" >>"$log" 2>&1
