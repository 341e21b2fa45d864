#!/usr/bin/env bash
# GPU machine: builds the CUDA addon, runs the correctness checks, the benchmark with the
# PyTorch comparison, and compute-sanitizer memcheck, then prints a short table. Full logs go
# to $OUT (or /tmp/kernels-gpu). Prepare on the dev machine first: bash tools/gpu/prepare.sh
# Usage: bash tools/gpu/run.sh [--no-bench] [--no-memcheck] [--mma | --variants]
# --mma: a quick loop for attention work instead of the full suite: the check and memcheck with
# the mma attention kernels (TINYLLAMA_ATTENTION=mma, attention_mma.cu; cuDNN's is the default), their batch-1 dump against fp32 PyTorch, and
# the attention benchmark of mma and wmma beside SDPA. TK_MMA_VARIANTS="name:VAR=value[:ops] ..."
# adds variants selected by environment settings (VAR=value,VAR2=value2 for several), each with the check and memcheck; ops (a
# kernels-bench --only filter, alternatives split by |, default attention) is what is timed: an attention variant (e.g.
# "wmma:TINYLLAMA_ATTENTION=wmma") also gets its dump compared with PyTorch and a row in the
# table; for any other filter (e.g. "x:SOME_SETTING=1:rmsnorm") the default kernels are timed
# with the same filter in the same call, and the rows are printed side by side. --variants: the
# TK_MMA_VARIANTS only, without the attention baseline and tables.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/cuda/bin:$PATH
out=${OUT:-/tmp/kernels-gpu}
mkdir -p "$out"
bench=1 memcheck=1 mma=0 variantsOnly=0
for a in "$@"; do
  case "$a" in --no-bench) bench=0 ;; --no-memcheck) memcheck=0 ;; --mma) mma=1 ;; --variants) mma=1 variantsOnly=1 ;; esac
done
declare -A status
stage() { echo "== $1 ($(date +%T))"; }

bash .gpu/setup.sh || { echo "node setup failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/run-info.txt"
# The device copy has no .git: pass the commit in, e.g. TK_COMMIT=$(git rev-parse --short HEAD).
echo "commit: ${TK_COMMIT:-unknown}" | tee -a "$out/run-info.txt"

stage build
build=/tmp/tk-build
t0=$SECONDS
if [ -n "${TINYLLAMA_KERNELS_BUILD_DIR:-}" ] && [ -f "$TINYLLAMA_KERNELS_BUILD_DIR/backends.json" ]; then
  build=$TINYLLAMA_KERNELS_BUILD_DIR # built by the caller (tools/gpu/session.sh) in this call
  status[build]="prebuilt ($build)"
elif : >"$out/build.log" && TK_BUILD_TIMEOUT=240 bash tools/gpu/build-kernels.sh "$build" "$out/build.log"; then
  status[build]="ok ($((SECONDS - t0)) s)"
else
  grep -E "error|Error" "$out/build.log" | head -40
  tail -20 "$out/build.log"
  echo "build FAILED"
  exit 1
fi
export TINYLLAMA_KERNELS_BUILD_DIR=$build

if [ $mma = 1 ]; then
  # the suite (and memcheck) with one environment setting: check_variant NAME VAR=value
  check_variant() {
    local name=$1 setting=$2
    stage "check ($name: $setting)"
    env ${setting//,/ } timeout 150 node .gpu/kernels-check.mjs >"$out/check-$name.log" 2>&1
    echo "check $name: rc=$?, $(tail -1 "$out/check-$name.log")"
    grep -E "^FAIL|threw|Error" "$out/check-$name.log" | head -20
    if [ $memcheck = 1 ]; then
      stage "memcheck ($name)"
      env ${setting//,/ } timeout 120 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
        node .gpu/kernels-check.mjs --quick >"$out/memcheck-$name.log" 2>&1
      echo "memcheck $name: rc=$?, $(grep -E 'ERROR SUMMARY' "$out/memcheck-$name.log" | tail -1)"
    fi
  }
  # "mma" is the default kernels; each variant is "name:VAR=value[:ops]" (run with VAR=value set)
  runs=("mma:TINYLLAMA_ATTENTION=mma")  # mma in both directions (the backward follows it)
  [ $variantsOnly = 1 ] && runs=()       # --variants: only TK_MMA_VARIANTS, no attention baseline
  for v in ${TK_MMA_VARIANTS:-}; do runs+=("$v"); done
  table=()
  for r in "${runs[@]}"; do
    name=${r%%:*} rest=${r#*:}
    setting=${rest%%:*} ops=attention
    [ "$rest" != "$setting" ] && ops=${rest#*:}
    if [ "$ops" != attention ]; then
      # not attention: the check, then the default and this variant timed on the same ops
      check_variant "$name" "$setting"
      for run in "default:" "$name:$setting"; do
        run_setting=${run#*:} && timeout 120 env ${run_setting//,/ } node .gpu/kernels-bench.mjs --only "$ops" \
          --out "$out/kernels-bench-${run%%:*}-${ops//[^a-z]/-}.json" 2>&1 | grep -E "$ops" | grep -E " ms " |
          sed "s/^/variant ${run%%:*}: /" | tee -a "$out/variants.log"
      done
      continue
    fi
    check_variant "$name" "$setting"
    stage "attention bench ($name, with its batch-1 dump)"
    env ${setting//,/ } timeout 120 node .gpu/kernels-bench.mjs --only attention --out "$out/kernels-bench-$name.json" \
      --dump "/tmp/tk-cmp-$name" >>"$out/bench.log" 2>&1 || echo "bench $name: rc=$?"
    PYTHONUNBUFFERED=1 timeout 120 python3 tools/bench/kernels/torch_bench.py --ours "$out/kernels-bench-$name.json" \
      --dump "/tmp/tk-cmp-$name" --compare-only >>"$out/torch.log" 2>&1
    echo "torch comparison ($name dump): rc=$?, $(grep -E '^torch comparison' "$out/torch.log" | tail -1)"
    [ "$name" = mma ] || table+=(--run "$name=$out/kernels-bench-$name.json")
  done
  [ $variantsOnly = 1 ] && exit 0
  grep -E "^(PASS|FAIL) +attention" "$out/torch.log"
  stage "attention bench (wmma)"
  TINYLLAMA_ATTENTION=wmma timeout 120 node .gpu/kernels-bench.mjs --only attention \
    --out "$out/kernels-bench-wmma.json" >>"$out/bench.log" 2>&1 || echo "bench wmma: rc=$?"
  PYTHONUNBUFFERED=1 timeout 120 python3 tools/bench/kernels/attention_table.py --wmma "$out/kernels-bench-wmma.json" \
    --mma "$out/kernels-bench-mma.json" ${table[@]+"${table[@]}"} 2>&1 | tee -a "$out/torch.log"
  exit 0
fi

stage check
timeout 150 node .gpu/kernels-check.mjs >"$out/check.log" 2>&1
rc=$?
status[check]="rc=$rc, $(tail -1 "$out/check.log")"
grep -E "^FAIL|device:|threw|Error" "$out/check.log" | head -40

if [ $memcheck = 1 ]; then
  stage memcheck
  timeout 120 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
    node .gpu/kernels-check.mjs --quick >"$out/memcheck.log" 2>&1
  status[memcheck]="rc=$?, $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)"
fi

if [ $bench = 1 ]; then
  stage bench
  timeout 150 node .gpu/kernels-bench.mjs --out "$out/kernels-bench.json" --dump /tmp/tk-cmp >"$out/bench.log" 2>&1
  status[bench]="rc=$?"
  tail -3 "$out/bench.log"
  stage torch
  PYTHONUNBUFFERED=1 timeout 330 python3 tools/bench/kernels/torch_bench.py --ours "$out/kernels-bench.json" \
    --dump /tmp/tk-cmp --md "$out/kernels-bench.md" >"$out/torch.log" 2>&1
  status[torch]="rc=$?, $(grep -E '^torch comparison' "$out/torch.log")"
  grep -E "^FAIL|Error|error" "$out/torch.log" | head -20
fi


echo
echo "== summary"
for k in build check bench torch memcheck; do
  if [ -n "${status[$k]:-}" ]; then echo "$k: ${status[$k]}"; fi
done
if [ -f "$out/kernels-bench.md" ]; then cat "$out/kernels-bench.md"; fi
if [ -f "$out/torch.log" ]; then grep -E "^(PASS|FAIL)" "$out/torch.log"; fi
# The exit status is the parts' (a part that did not run counts as passed): before, it was the
# last test's, so --no-bench always exited 1.
for k in check memcheck bench torch; do
  case "${status[$k]:-rc=0}" in rc=0*) ;; *) exit 1 ;; esac
done
exit 0
