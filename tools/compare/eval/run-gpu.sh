#!/usr/bin/env bash
# On the GPU machine, from the repository root, with out/eval-compare carried (make-inputs.mjs):
#   bash tools/compare/eval/run-gpu.sh [outDir]
# Compares our CPU-f32 scores with transformers in float32 (fast and slow tokenizers) and
# reports the transformers loop's speed. Ours on CUDA (bf16 and f32) against transformers on the
# same card: tools/bench/eval/run-gpu.sh.
set -uo pipefail
in=out/eval-compare
out=${1:-${OUT:-/tmp/eval-compare}}
mkdir -p "$out"
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
rc=0
for tk in auto sp; do
  mkdir -p "$out/$tk"
  python3 tools/compare/eval/compare.py --checkpoint "$in/checkpoint" \
    --runs "$in/ours-0.4.9.1" "$in/ours-0.4.9.2" --dtype float32 --tokenizer "$tk" \
    --out "$out/$tk" 2>&1 | tee "$out/compare-$tk.log" || rc=1
done
exit $rc
