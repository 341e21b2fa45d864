#!/usr/bin/env bash
# GPU machine: the training-throughput table for TinyLlama 1.1B, ours and PyTorch in one run.
# Prepare on the dev machine: bash tools/gpu/prepare.sh && bash tools/compare/trainer/prepare.sh
# Usage (repository root): OUT=dir bash tools/bench/train/run-gpu.sh   (or as a part of
# tools/gpu/session.sh: bench-train). TK_MICRO="8 16" micro-batches, TK_STEPS steps each.
# 1. ours: the bundled `pnpm train` CLI, tinyllama-1.1b on the sample shards, global batch 16 x
#    2048, micro-batch 8 (and 16 when it fits), TK_STEPS steps; metrics.jsonl per run, plus one
#    --profile run (per-op GPU time of one step);
# 2. PyTorch: torch_train.py, transformers eager and torch.compile, same shapes;
# 3. table.py prints one table (median step of each run after the first two);
# 4. h100-estimate.mjs adds what ours would do on an H100 SXM (see that script).
set -uo pipefail
cd "$(dirname "$0")/../../.."
out=${OUT:-/tmp/bench-train}
mkdir -p "$out"
micro=${TK_MICRO:-8 16}
steps=${TK_STEPS:-12}
if [ -z "${TINYLLAMA_KERNELS_BUILD_DIR:-}" ]; then
  echo "set TINYLLAMA_KERNELS_BUILD_DIR (tools/gpu/session.sh builds it)"
  exit 1
fi
source tools/gpu/fast-out.sh # run_dir / keep_run: checkpoints in memory where there is room
for m in $micro; do
  echo "== ours micro-batch $m ($(date +%T))"
  rm -rf "$out/ours-mb$m" "$(run_dir "ours-mb$m")"
  timeout 200 node .gpu/trainer/trainer-cli.mjs --device cuda --model tinyllama-1.1b --data .gpu/data \
    --out "$(run_dir "ours-mb$m")" --micro-batch "$m" --global-batch 16 --max-steps "$steps" \
    --scale "$(python3 -c "print(($steps + 2) * 16 * 2048 / 3e12)")" \
    --eval-batches 1 --save-every 0 --profile-step 4 >"$out/ours-mb$m.log" 2>&1
  echo "rc=$? $(grep -E 'step +[0-9]+ ' "$out/ours-mb$m.log" | tail -1)"
  keep_run "ours-mb$m"
  tail -3 "$out/ours-mb$m.log"
done
# TK_RECOMPUTE_MICRO="16 32": ours again at these micro-batches with --recompute layers (global
# batch max(16, micro-batch) sequences).
for m in ${TK_RECOMPUTE_MICRO:-}; do
  echo "== ours micro-batch $m, --recompute layers ($(date +%T))"
  name="ours-mb$m-recompute"
  global=$((m > 16 ? m : 16))
  rm -rf "$out/$name" "$(run_dir "$name")"
  timeout 200 node .gpu/trainer/trainer-cli.mjs --device cuda --model tinyllama-1.1b --data .gpu/data \
    --out "$(run_dir "$name")" --micro-batch "$m" --global-batch "$global" --max-steps "$steps" \
    --scale "$(python3 -c "print(($steps + 2) * $global * 2048 / 3e12)")" --recompute layers \
    --eval-batches 1 --save-every 0 >"$out/$name.log" 2>&1
  echo "rc=$? $(grep -E 'step +[0-9]+ ' "$out/$name.log" | tail -1)"
  keep_run "$name"
done
# TK_TORCH=0: ours only (a second variant of ours timed after a full run in the same call).
if [ "${TK_TORCH:-1}" != 0 ]; then
  echo "== torch ($(date +%T))"
  # eager at every micro-batch; torch.compile (a minute of compiling per shape) at the first only.
  PYTHONUNBUFFERED=1 timeout 150 python3 tools/bench/train/torch_train.py --out "$out/torch-eager.json" \
    --modes eager --micro-batch $micro --steps "${TK_TORCH_STEPS:-6}" >"$out/torch.log" 2>&1
  echo "eager rc=$?"
  PYTHONUNBUFFERED=1 timeout 200 python3 tools/bench/train/torch_train.py --out "$out/torch-compile.json" \
    --modes compile --micro-batch ${micro%% *} --steps "${TK_TORCH_STEPS:-6}" >>"$out/torch.log" 2>&1
  echo "compile rc=$?"
  tail -8 "$out/torch.log"
fi
python3 tools/bench/train/table.py "$out" | tee "$out/table.md"
# 4. h100-estimate.mjs: the same runs on an H100 SXM (memory-bound ops at its bandwidth)
ours=()
for m in $micro; do [ -f "$out/ours-mb$m/v1.0/profile.json" ] && ours+=("$out/ours-mb$m"); done
[ ${#ours[@]} -gt 0 ] && node tools/bench/train/h100-estimate.mjs "${ours[@]}" | tee -a "$out/table.md"
