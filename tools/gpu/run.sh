#!/usr/bin/env bash
# GPU machine: builds the CUDA addon, runs the correctness checks, the benchmark with the
# PyTorch comparison, and compute-sanitizer memcheck, then prints a short table. Full logs go
# to $OUT (or /tmp/kernels-gpu). Prepare on the dev machine first: bash tools/gpu/prepare.sh
# Usage: bash tools/gpu/run.sh [--no-bench] [--no-memcheck] [--mma]
# --mma: also runs the check, memcheck and attention benchmark with TINYLLAMA_ATTENTION=mma (the
# mma.sync attention kernel, attention_mma.cu), appended to the same logs; the table gets
# "[mma]" attention rows beside the default kernel's and SDPA's.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/cuda/bin:$PATH
out=${OUT:-/tmp/kernels-gpu}
mkdir -p "$out"
bench=1 memcheck=1 mma=0
for a in "$@"; do
  case "$a" in --no-bench) bench=0 ;; --no-memcheck) memcheck=0 ;; --mma) mma=1 ;; esac
done
declare -A status
stage() { echo "== $1 ($(date +%T))"; }

bash .gpu/setup.sh || { echo "node setup failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/run-info.txt"
# The device copy has no .git: pass the commit in, e.g. TK_COMMIT=$(git rev-parse --short HEAD).
echo "commit: ${TK_COMMIT:-unknown}" | tee -a "$out/run-info.txt"

stage build
build=/tmp/tk-build
rm -rf "$build" # always from scratch: a warm machine keeps /tmp, and carried files can look older than objects
t0=$SECONDS
if cmake -S packages/kernels/native -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DNODE_API_HEADERS_DIR="$PWD/.gpu/headers/node-api-headers" \
  -DNODE_ADDON_API_DIR="$PWD/.gpu/headers/node-addon-api" -DTINYLLAMA_CUDA=ON >"$out/build.log" 2>&1 &&
  timeout 240 cmake --build "$build" -j "$(nproc)" >>"$out/build.log" 2>&1; then
  status[build]="ok ($((SECONDS - t0)) s)"
else
  grep -E "error|Error" "$out/build.log" | head -40
  tail -20 "$out/build.log"
  echo "build FAILED"
  exit 1
fi
export TINYLLAMA_KERNELS_BUILD_DIR=$build

stage check
timeout 150 node .gpu/kernels-check.mjs >"$out/check.log" 2>&1
rc=$?
status[check]="rc=$rc, $(tail -1 "$out/check.log")"
grep -E "^FAIL|device:|threw|Error" "$out/check.log" | head -40
if [ $mma = 1 ]; then
  stage check-mma
  TINYLLAMA_ATTENTION=mma timeout 150 node .gpu/kernels-check.mjs >/tmp/check-mma.log 2>&1
  status[check-mma]="rc=$?, $(tail -1 /tmp/check-mma.log)"
  grep -E "^FAIL|threw|Error" /tmp/check-mma.log | head -40
  { echo; echo "== TINYLLAMA_ATTENTION=mma"; cat /tmp/check-mma.log; } >>"$out/check.log"
fi

if [ $memcheck = 1 ]; then
  stage memcheck
  timeout 120 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
    node .gpu/kernels-check.mjs --quick >"$out/memcheck.log" 2>&1
  status[memcheck]="rc=$?, $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)"
  if [ $mma = 1 ]; then
    echo "== TINYLLAMA_ATTENTION=mma" >>"$out/memcheck.log"
    TINYLLAMA_ATTENTION=mma timeout 120 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
      node .gpu/kernels-check.mjs --quick >>"$out/memcheck.log" 2>&1
    status[memcheck-mma]="rc=$?, $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)"
  fi
fi

if [ $bench = 1 ]; then
  stage bench
  timeout 150 node .gpu/kernels-bench.mjs --out "$out/kernels-bench.json" --dump /tmp/tk-cmp >"$out/bench.log" 2>&1
  status[bench]="rc=$?"
  tail -3 "$out/bench.log"
  mmaArgs=()
  if [ $mma = 1 ]; then
    TINYLLAMA_ATTENTION=mma timeout 120 node .gpu/kernels-bench.mjs --only attention --out /tmp/kernels-bench-mma.json \
      --dump /tmp/tk-cmp-mma >/tmp/bench-mma.log 2>&1
    status[bench-mma]="rc=$?"
    { echo; echo "== TINYLLAMA_ATTENTION=mma"; cat /tmp/bench-mma.log; } >>"$out/bench.log"
    grep -E "^attention" /tmp/bench-mma.log
    [ -f /tmp/kernels-bench-mma.json ] && mmaArgs=(--ours-mma /tmp/kernels-bench-mma.json)
  fi
  stage torch
  PYTHONUNBUFFERED=1 timeout 330 python3 tools/bench/kernels/torch_bench.py --ours "$out/kernels-bench.json" \
    --dump /tmp/tk-cmp --md "$out/kernels-bench.md" "${mmaArgs[@]}" >"$out/torch.log" 2>&1
  status[torch]="rc=$?, $(grep -E '^torch comparison' "$out/torch.log")"
  grep -E "^FAIL|Error|error" "$out/torch.log" | head -20
  if [ ${#mmaArgs[@]} -gt 0 ]; then # the mma kernel's batch-1 dump against fp32 PyTorch and SDPA
    PYTHONUNBUFFERED=1 timeout 120 python3 tools/bench/kernels/torch_bench.py --ours /tmp/kernels-bench-mma.json \
      --dump /tmp/tk-cmp-mma --compare-only >/tmp/torch-mma.log 2>&1
    status[torch-mma]="rc=$?, $(grep -E '^torch comparison' /tmp/torch-mma.log)"
    { echo; echo "== TINYLLAMA_ATTENTION=mma (compare only)"; cat /tmp/torch-mma.log; } >>"$out/torch.log"
  fi
fi


echo
echo "== summary"
for k in build check check-mma bench bench-mma torch torch-mma memcheck memcheck-mma; do [ -n "${status[$k]:-}" ] && echo "$k: ${status[$k]}"; done
[ -f "$out/kernels-bench.md" ] && cat "$out/kernels-bench.md"
[ -f "$out/torch.log" ] && grep -E "^(PASS|FAIL)|^== TINYLLAMA" "$out/torch.log"
