#!/usr/bin/env bash
# GPU machine: one device call that builds the CUDA addon once and runs a list of parts
# (each an existing GPU script) under one deadline, so a 10-minute call is spent on work, not on
# rebuilding. The device tool brings back at most 8 files from $OUT, so every part's logs go to
# $logs and are packed into $OUT/logs.tgz after each part (a call cut off at its limit still
# returns what finished). Prepare on the dev machine:
#   bash tools/gpu/prepare.sh && bash tools/compare/trainer/prepare.sh && bash tools/compare/generate/prepare.sh
# Usage: TK_COMMIT=$(git rev-parse --short HEAD) bash tools/gpu/session.sh PART... 
#   parts: trainer-bf16 trainer-fp32 trainer-fp32-cuda train gen-fp32 gen-bf16 gen-speed mma variants kernels ncu bench-train
#          bench-train-recompute bench-train-ours
#          bench-train-env:NAME:VAR=value[,VAR=value...] (ours only, with those settings, e.g.
#            bench-train-env:mmabwd:TINYLLAMA_ATTENTION_BWD=mma)
#          dist-collectives dist-kill dist-equality dist-hybrid dist-scaling (TK_NCCL=1)
#   TK_DEADLINE (seconds, default 560): parts that would start after it are skipped, not cut.
#   TK_ARCH (default 90): CUDA architectures of this build (the product builds 80 and 90).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/cuda/bin:$PATH
out=${OUT:-/tmp/session-out}
logs=/tmp/session-logs
# TK_KEEP_LOGS=1: a follow-up call on the same warm machine keeps the earlier call's runs.
[ "${TK_KEEP_LOGS:-0}" = 1 ] || rm -rf "$logs"
mkdir -p "$out" "$logs"
deadline=${TK_DEADLINE:-560}
declare -a summary
note() { summary+=("$1"); echo "-- $1"; }
# Dumps (checkpoints, gradients: gigabytes) stay behind; logs, JSON and small files come back.
pack() { (cd "$logs" && find . -type f -size -4M ! -name '*.safetensors' | tar -czf "$out/logs.tgz" -T -) 2>/dev/null; }
left() { echo $((deadline - SECONDS)); }

bash .gpu/setup.sh || { echo "node setup failed"; exit 1; }
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  echo "commit: ${TK_COMMIT:-unknown}, arch ${TK_ARCH:-90}, date $(date -u +%FT%TZ)"
} 2>&1 | tee "$logs/run-info.txt"

build=/tmp/tk-build
t0=$SECONDS
if [ -f "$build/backends.json" ] && [ "${TK_REBUILD:-1}" = 0 ]; then
  note "build: reused $build"
else
  configure() { # extra cmake flags...
    TK_BUILD_TIMEOUT=240 bash tools/gpu/build-kernels.sh "$build" "$logs/build.log" "$@"
  }
  # TK_NCCL=1 (multi-GPU parts): with NCCL; if that fails to build, without it, so the
  # single-GPU parts of the call still run.
  if [ "${TK_NCCL:-0}" = 1 ] && configure -DTINYLLAMA_NCCL=ON; then
    note "build: ok with NCCL ($((SECONDS - t0)) s): $(cat "$build/backends.json")"
  elif [ "${TK_NCCL:-0}" = 1 ] && { grep -E "error" "$logs/build.log" | head -20; configure -DTINYLLAMA_NCCL=OFF; }; then
    note "build: NCCL build FAILED, built without it ($((SECONDS - t0)) s)"
  elif [ "${TK_NCCL:-0}" != 1 ] && configure; then
    note "build: ok ($((SECONDS - t0)) s; $(sed -n "s/.*tinyllama: \(cuDNN attention.*\)/\1/p" "$logs/build.log" | head -1))"
  elif [ "${TK_NCCL:-0}" != 1 ] && { grep -E "error" "$logs/build.log" | head -20; configure -DTINYLLAMA_CUDNN=OFF; }; then
    note "build: cuDNN attention FAILED to build, built without it ($((SECONDS - t0)) s)"
  else
    grep -E "error" "$logs/build.log" | head -30
    pack
    echo "build FAILED"
    exit 1
  fi
fi
export TINYLLAMA_KERNELS_BUILD_DIR=$build
pack

# part name, seconds it needs at least, command...
part() {
  local name=$1 need=$2
  shift 2
  if [ "$(left)" -lt "$need" ]; then
    note "$name: skipped ($(left) s left, needs $need)"
    return
  fi
  echo "== $name ($(date +%T), $(left) s left)"
  local t=$SECONDS
  timeout "$(left)" "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  note "$name: rc=$rc in $((SECONDS - t)) s"
  grep -E "^(PASS|FAIL|variant )|FAILED|Error|step +(1|10|20) |tokens/s|MFU|summary" "$logs/$name.log" | head -40
  pack
}

for p in "$@"; do
  case $p in
    trainer-bf16) part "$p" 120 bash tools/compare/trainer/run-gpu.sh "$logs/trainer" bf16 ;;
    trainer-fp32) part "$p" 120 bash tools/compare/trainer/run-gpu.sh "$logs/trainer" fp32 ;;
    trainer-fp32-cuda) part "$p" 120 bash tools/compare/trainer/run-gpu.sh "$logs/trainer" fp32-cuda ;;
    train) part "$p" 90 bash tools/compare/trainer/run-gpu.sh "$logs/trainer" train ;;
    gen-fp32) part "$p" 90 bash tools/compare/generate/run-gpu.sh "$logs/generate" fp32 ;;
    gen-bf16) part "$p" 90 bash tools/compare/generate/run-gpu.sh "$logs/generate" bf16 ;;
    gen-speed) part "$p" 90 bash tools/compare/generate/run-gpu.sh "$logs/generate" speed speed-general ;;
    mma) part "$p" 120 env OUT="$logs/mma" bash tools/gpu/run.sh --mma ;;
    variants) part "$p" 60 env OUT="$logs/variants" bash tools/gpu/run.sh --variants ;;  # TK_MMA_VARIANTS only
    kernels) part "$p" 100 env OUT="$logs/kernels" bash tools/gpu/run.sh ;;  # 59-86 s on an H200
    ncu) part "$p" 60 env OUT="$logs/ncu" bash tools/gpu/ncu.sh ;;
    bench-train) part "$p" 200 env OUT="$logs/bench-train" bash tools/bench/train/run-gpu.sh ;;
    # ours only: micro-batch 16, then 16 and 32 with --recompute layers (the price of recomputing)
    bench-train-recompute)
      part "$p" 120 env OUT="$logs/$p" TK_TORCH=0 TK_MICRO=16 TK_RECOMPUTE_MICRO="16 32" \
        bash tools/bench/train/run-gpu.sh ;;
    # ours only with any settings: bench-train-env:NAME:VAR=value[,VAR=value...]
    bench-train-env:*:*)
      name=${p#bench-train-env:} && name=${name%%:*} settings=${p#bench-train-env:*:}
      part "bench-train-env-$name" 90 env OUT="$logs/bench-train-env-$name" TK_TORCH=0 ${settings//,/ } \
        bash tools/bench/train/run-gpu.sh ;;
    # ours only, default kernels: the comparison with a bench-train-env run in one call
    bench-train-ours) part "$p" 90 env OUT="$logs/$p" TK_TORCH=0 bash tools/bench/train/run-gpu.sh ;;
    dist-*) part "$p" 60 env OUT="$logs/dist" bash tools/gpu/run-distributed.sh "${p#dist-}" ;;
    *) note "$p: unknown part" ;;
  esac
done
find "$logs" -name '*.safetensors' -delete
pack
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
