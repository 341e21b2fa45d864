#!/usr/bin/env bash
# GPU machine, from the repository root, after `bash tools/gpu/prepare.sh && bash
# tools/compare/generate/prepare.sh` on the dev machine:
#   bash tools/compare/generate/run-gpu.sh [outDir] [fp32] [bf16] [speed]   (default: all three)
# fp32: tinyllama-1.1b (reference init, seeded) on our CUDA backend in f32 vs transformers fp32
#       (TF32 off): 8 prompts x 64 greedy tokens, token for token; KV cache vs full recomputation.
# bf16: the same in bf16 on both sides (divergences allowed only at near-ties).
# speed: batch-1 and batch-32 decoding (prompt 128, 128 new tokens), ours vs transformers generate
#        on the same card, bf16.
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PATH=/usr/local/cuda/bin:$PATH
out=${1:-${OUT:-/tmp/generate-compare}}
shift || true
parts=${*:-fp32 bf16 speed}
want() { case " $parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
mkdir -p "$out"
bash .gpu/setup.sh || { echo "node setup failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' | tee -a "$out/device.txt"
git rev-parse --short HEAD 2>/dev/null | tee -a "$out/device.txt"

if [ -z "${TINYLLAMA_KERNELS_BUILD_DIR:-}" ]; then
  build=/tmp/tk-build
  : >"$out/build.log"
  bash tools/gpu/build-kernels.sh "$build" "$out/build.log" ||
    { tail -30 "$out/build.log"; echo "kernels build FAILED"; exit 1; }
  export TINYLLAMA_KERNELS_BUILD_DIR=$build
fi

rc=0
run() { # name, compare flags, dump flags...
  local name=$1 cflags=$2; shift 2
  echo "== $name ($(date +%T))"
  if ! node .gpu/generate-dump.mjs --out "$out/$name" "$@" >"$out/$name-dump.log" 2>&1; then
    tail -20 "$out/$name-dump.log"; echo "$name: dump FAILED"; rc=1; return
  fi
  tail -3 "$out/$name-dump.log"
  # shellcheck disable=SC2086
  python3 tools/compare/generate/compare.py --dump "$out/$name" $cflags 2>&1 | tee "$out/$name-compare.log"
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
}
# The decoder's default, the decode kernel (kernels' decodeAttention), is what these checks
# verify; speed-general times the general path (TINYLLAMA_DECODE_ATTENTION=off) for comparison.
export TINYLLAMA_DECODE_ATTENTION=${TINYLLAMA_DECODE_ATTENTION:-on}
want fp32 && run fp32-1.1b "" --model tinyllama-1.1b --device cuda --dtype f32 --prompts 8 --prompt-len 64 --new-tokens 64 --full-check 2
want bf16 && run bf16-1.1b "" --model tinyllama-1.1b --device cuda --dtype bf16 --prompts 8 --prompt-len 64 --new-tokens 64 --full-check 2
# transformers' static cache too; TK_HF_COMPILE=1 adds its torch.compile setting (minutes of compiling).
hf_speed="--speed --hf-static${TK_HF_COMPILE:+ --hf-compile}"
want speed && run speed-1.1b "$hf_speed" --model tinyllama-1.1b --device cuda --dtype bf16 --prompts 2 --prompt-len 16 --new-tokens 8 --full-check 0 --speed
want speed-general && TINYLLAMA_DECODE_ATTENTION=off run speed-general-1.1b "" --model tinyllama-1.1b --device cuda --dtype bf16 --prompts 2 --prompt-len 16 --new-tokens 8 --full-check 0 --speed
# The checkpoint dumps hold 4.4 GB of weights each: keep only the logs and JSON.
find "$out" -name '*.safetensors' -delete
echo "results: $out"
exit $rc
