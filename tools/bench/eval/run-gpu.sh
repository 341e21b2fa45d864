#!/usr/bin/env bash
# GPU machine: builds the CUDA addon, writes a random TinyLlama-1.1B-shaped checkpoint (bf16),
# scores the synthetic tasks with `pnpm eval --device cuda`, then checks the same requests with
# transformers (tokens; f32 log-likelihoods within 1e-4 + 1e-5 |ll| and identical acc/acc_norm;
# bf16 no further from float32 than transformers' bf16: tools/compare/eval/README.md) and times transformers' harness-style loop on the same card. Prepare first on the dev machine:
# bash tools/bench/eval/prepare.sh; carry .gpu. Logs and JSON go to $OUT (or /tmp/eval-bench).
# Usage: bash tools/bench/eval/run-gpu.sh [--shape 1.1b|4m] [--batch-size 32] [--limit N]
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PATH=/usr/local/cuda/bin:$PATH
out=${OUT:-/tmp/eval-bench}
mkdir -p "$out"
shape=1.1b bs=32 limit=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shape) shape=$2; shift ;;
    --batch-size) bs=$2; shift ;;
    --limit) limit=(--limit "$2"); shift ;;
  esac
  shift
done
stage() { echo "== $1 ($(date +%T))"; }

bash .gpu/setup.sh || { echo "node setup failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/device.txt"

stage build
build=/tmp/tk-build
if [ ! -f "$build/tinyllama_cuda.node" ]; then
  : >"$out/build.log"
  bash tools/gpu/build-kernels.sh "$build" "$out/build.log" ||
    { grep -E "error" "$out/build.log" | head -20; echo "build FAILED"; exit 1; }
fi
export TINYLLAMA_KERNELS_BUILD_DIR=$build

stage model
model=/tmp/eval-model-$shape
[ -f "$model/config.json" ] || python3 tools/bench/eval/make_model.py "$model" .gpu/llama2-tokenizer.model \
  --shape "$shape" --dtype bfloat16 2>&1 | grep -v Warning | tail -2

stage ours
tasks=hellaswag,arc_easy,boolq,piqa,winogrande
timeout 400 node .gpu/eval-cli.mjs --checkpoint "$model" --data-dir .gpu/eval-data --tasks "$tasks" \
  --device cuda --batch-size "$bs" --log-samples --output "$out/ours" "${limit[@]}" >"$out/ours.log" 2>&1
rc=$?
tail -14 "$out/ours.log"
[ $rc = 0 ] || { echo "pnpm eval FAILED (rc=$rc)"; exit 1; }
stage "ours without is_greedy"
timeout 400 node .gpu/eval-cli.mjs --checkpoint "$model" --data-dir .gpu/eval-data --tasks "$tasks" \
  --device cuda --batch-size "$bs" --no-is-greedy --output "$out/ours-no-greedy" "${limit[@]}" >"$out/ours-no-greedy.log" 2>&1
tail -1 "$out/ours-no-greedy.log"
node -e 'for (const d of process.argv.slice(1)) { const r = require(d + "/results.json").tinyllama_ts;
  console.log(`${d}: ${r.requests} requests, ${r.forward_windows} windows, ${r.input_tokens} tokens, ${r.scoring_seconds.toFixed(2)} s, ${r.requests_per_second.toFixed(1)} req/s`); }' \
  "$out/ours" "$out/ours-no-greedy"

stage "ours in float32 (first 200 docs per task)"
timeout 300 node .gpu/eval-cli.mjs --checkpoint "$model" --data-dir .gpu/eval-data --tasks "$tasks" \
  --device cuda --dtype f32 --batch-size "$bs" --limit 200 --log-samples --output "$out/ours-f32" >"$out/ours-f32.log" 2>&1
tail -1 "$out/ours-f32.log"

stage "transformers float32"
timeout 300 python3 tools/compare/eval/compare.py --checkpoint "$model" --runs "$out/ours-f32" \
  --dtype float32 --tokenizer sp --batch-size "$bs" --out "$out" 2>&1 | grep -v "Loading weights" | tee "$out/compare-f32.log"
f32rc=${PIPESTATUS[0]}

stage "transformers bfloat16"
timeout 300 python3 tools/compare/eval/compare.py --checkpoint "$model" --runs "$out/ours" \
  --dtype bfloat16 --fp32-reference --tokenizer sp --batch-size "$bs" --out "$out" 2>&1 | grep -v "Loading weights" | tee "$out/compare.log"
bf16rc=${PIPESTATUS[0]}
echo "float32 comparison rc=$f32rc, bfloat16 comparison rc=$bf16rc"
exit $((f32rc | bf16rc))
