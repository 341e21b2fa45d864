#!/usr/bin/env bash
# GPU machine: Nsight Compute on the memory-bound kernels nearest their target (80% of copy
# bandwidth: RoPE, the RMSNorm backward; 2026-11-28) and a few others, one kernel launch each at
# the 1.1B shapes of tools/bench/kernels/bench.ts. Clocks are left alone (--clock-control none,
# as the device notes ask), so durations match the benchmark's. One text report per kernel in
# $OUT (default /tmp/ncu): speed of light, memory workload, occupancy, launch, warp stall and
# scheduler sections, plus a one-line summary per kernel on stdout.
#   TINYLLAMA_KERNELS_BUILD_DIR=<build> bash tools/gpu/ncu.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/cuda/bin:$PATH
out=${OUT:-/tmp/ncu}
mkdir -p "$out"
command -v ncu >/dev/null || { echo "ncu: not on PATH"; exit 1; }
sections=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats
  --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis)
# name, bench --only filter, kernel name regex
# TK_NCU="name ..." profiles only those (default: all below)
profile() {
  local name=$1 only=$2 kernel=$3
  [ -z "${TK_NCU:-}" ] || [[ " $TK_NCU " == *" $name "* ]] || return 0
  # skip the first launch (warm-up, first-touch allocations); profile the second
  timeout 150 ncu --clock-control none --target-processes all -k "regex:$kernel" --launch-skip 1 --launch-count 1 \
    "${sections[@]}" node .gpu/kernels-bench.mjs --only "$only" --out "$out/bench-$name.json" >"$out/ncu-$name.txt" 2>&1
  local rc=$?
  local dur dram occ
  dur=$(grep -m1 -E "^ +Duration" "$out/ncu-$name.txt" | awk '{print $(NF-1), $NF}')
  dram=$(grep -m1 -E "^ +DRAM Throughput" "$out/ncu-$name.txt" | awk '{print $NF"%"}')
  occ=$(grep -m1 -E "^ +Achieved Occupancy" "$out/ncu-$name.txt" | awk '{print $NF"%"}')
  echo "ncu $name ($kernel): rc=$rc, duration $dur, DRAM throughput $dram, achieved occupancy $occ"
}
profile rope "rope fwd" "rope(Vec)?Kernel"
profile rmsnorm-fwd "residual + rmsnorm fwd" "rmsnorm(BlockRow|Vec)Kernel"
profile rmsnorm-bwd "rmsnorm bwd" "rmsnormBackward(Fused|Rows|BlockRow)"
profile rmsnorm-bwd-sum "rmsnorm bwd" sumChunks
profile cross-entropy "cross-entropy" "crossEntropy(Vec|Regs)"
# the mma attention kernels run only with TINYLLAMA_ATTENTION=mma (cuDNN's are the default)
profile attention-fwd "attention fwd" mmaForward2
profile attention-dkv "attention bwd" mmaDkv2
profile attention-dq "attention bwd" mmaDqKernel
profile attention-delta "attention bwd" attnDelta
