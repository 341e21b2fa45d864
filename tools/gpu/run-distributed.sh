#!/usr/bin/env bash
# GPU machine (2 or 4 GPUs): multi-GPU training over NCCL, end to end. First run 2026-11-28 on
# 4 x H200 (collectives, kill, 2-GPU equality): tools/gpu/DISTRIBUTED-RESULTS.md.
# Prepare on the dev machine: bash tools/gpu/prepare.sh && bash tools/compare/trainer/prepare.sh
# Usage: TK_COMMIT=$(git rev-parse --short HEAD) bash tools/gpu/run-distributed.sh [parts...]
#   parts (default all): build collectives kill equality hybrid scaling
#   TK_MODEL (default tinyllama-1.1b), TK_STEPS (default 10) for the loss-equality runs.
# Writes logs to $OUT (or /tmp/distributed-gpu) and prints a summary table.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/cuda/bin:$PATH
# NVLink multicast stays off (the machines set it; keep it if they did not).
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
out=${OUT:-/tmp/distributed-gpu}
mkdir -p "$out"
parts=${*:-build collectives kill equality hybrid scaling}
want() { case " $parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
declare -A status
stage() { echo "== $1 ($(date +%T))"; }
model=${TK_MODEL:-tinyllama-1.1b}
steps=${TK_STEPS:-10}

bash .gpu/setup.sh || { echo "node setup failed"; exit 1; }
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/run-info.txt"
echo "commit: ${TK_COMMIT:-unknown}, GPUs: $gpus, NCCL_NVLS_ENABLE=$NCCL_NVLS_ENABLE" | tee -a "$out/run-info.txt"
[ -f .gpu/trainer/trainer-cli.mjs ] || { echo "missing .gpu/trainer/trainer-cli.mjs: run tools/compare/trainer/prepare.sh"; exit 1; }

build=/tmp/tk-build
if want build || [ ! -f "$build/backends.json" ]; then
  stage "build (CUDA + NCCL)"
  : >"$out/build.log"
  if bash tools/gpu/build-kernels.sh "$build" "$out/build.log" -DTINYLLAMA_NCCL=ON; then
    status[build]="ok: $(cat "$build/backends.json")"
  else
    grep -E "error|Error" "$out/build.log" | head -40
    echo "build FAILED (NCCL check: see $out/build.log)"
    exit 1
  fi
fi
export TINYLLAMA_KERNELS_BUILD_DIR=$build
grep -q '"nccl": true' "$build/backends.json" || { echo "NCCL not in the build: $(cat "$build/backends.json")"; exit 1; }

if want collectives; then
  for n in 2 4; do
    [ "$gpus" -ge "$n" ] || continue
    stage "collectives on $n GPUs"
    timeout 300 node .gpu/distributed-check.mjs --nproc "$n" >"$out/collectives-$n.log" 2>&1
    status[collectives-$n]="rc=$?, $(grep -E 'collectives PASS|FAILED checks' "$out/collectives-$n.log" | tail -1)"
    grep -E "^FAIL|rank [0-9]+:" "$out/collectives-$n.log" | head -20
  done
fi

if want kill; then
  stage "killed rank (2 GPUs)"
  timeout 200 node .gpu/distributed-check.mjs --nproc 2 --kill --timeout 60 >"$out/kill.log" 2>&1
  status[kill]="rc=$?, $(grep -E 'exit codes' "$out/kill.log")"
  grep -E "failed after|PASS|FAIL" "$out/kill.log"
fi

# Training runs: same global batch on 1, 2 and 4 GPUs (seq 2048, micro-batch 4, global 16).
# lr 4e-5: the scaled recipe reaches 4e-4 within the first step, where a random init spikes
# (loss 10.6 -> 11.3) and reduction-order rounding grows past any bound by step 5 (seen on
# H200: 2 GPUs matched 1 GPU to 1e-4 for 4 steps, then 0.1); a stable lr tests the sharding.
source tools/gpu/fast-out.sh # run_dir / keep_run: checkpoints in memory where there is room
train() { # name, extra flags...
  local name=$1; shift
  rm -rf "$out/$name" "$(run_dir "$name")"
  timeout 500 node .gpu/trainer/trainer-cli.mjs --device cuda --model "$model" --data .gpu/data \
    --out "$(run_dir "$name")" --seq-len 2048 --micro-batch 4 --global-batch 16 \
    --scale "$(python3 -c "print($steps*16*2048/3e12)")" --eval-batches 0 --save-every 0 \
    --lr-max 4e-5 --lr-min 4e-6 "$@" \
    >"$out/$name.log" 2>&1
  local rc=$?
  # TK_NO_KEEP=1: the caller frees the directory itself (a run shared with another process).
  [ "${TK_NO_KEEP:-0}" = 1 ] || keep_run "$name"
  return $rc
}
losses() { python3 -c "
import json,sys
print(' '.join('%.5f' % r['loss'] for r in map(json.loads, open('$out/$1/v1.0/metrics.jsonl')) if r['kind']=='train'))"; }
compare() { # name vs 1gpu: max |loss diff| over the steps (bf16 compute: bound 0.02)
  python3 -c "
import json
def l(n): return [r['loss'] for r in map(json.loads, open('$out/'+n+'/v1.0/metrics.jsonl')) if r['kind']=='train']
a, b = l('1gpu'), l('$1')
d = max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else float('inf')
print(('PASS' if d < 0.02 else 'FAIL') + ' $1 vs 1 GPU: %d steps, max |loss diff| %.2e' % (len(b), d))"; }

if { want equality || want hybrid; } && [ ! -s "$out/1gpu/v1.0/metrics.jsonl" ]; then
  stage "1 GPU, $model, $steps steps"
  train 1gpu; status[1gpu]="rc=$?: $(losses 1gpu)"
fi
# TK_EQUALITY: the runs compared with 1 GPU (N: N GPUs, No: with --comm-overlap on); each
# costs about a minute (model init, 10 steps, the final sharded checkpoint).
if want equality; then
  for n in ${TK_EQUALITY:-2 4 4o}; do
    g=${n%o}
    [ "$gpus" -ge "$g" ] || continue
    if [ "$n" = "$g" ]; then
      stage "$g GPUs, full sharding"
      train "${g}gpu-full" --nproc-per-node "$g" --sharding full
      status[${g}gpu-full]="rc=$?: $(compare "${g}gpu-full")"
    else
      stage "$g GPUs, full sharding, --comm-overlap on"
      train "${g}gpu-overlap" --nproc-per-node "$g" --sharding full --comm-overlap on
      status[${g}gpu-overlap]="rc=$?: $(compare "${g}gpu-overlap")"
    fi
  done
fi
if want hybrid && [ "$gpus" -ge 4 ]; then
  for variant in ${TK_HYBRID:-plain overlap}; do
    name=4gpu-hybrid; extra=()
    [ $variant = overlap ] && name=4gpu-hybrid-overlap && extra=(--comm-overlap on)
    stage "two nodes on one host: 2 x 2 GPUs, NCCL_HOSTID, rendezvous 127.0.0.1, hybrid ($variant)"
    port=$((29500 + RANDOM % 1000))
    common=(--nproc-per-node 2 --nnodes 2 --master-addr 127.0.0.1 --master-port "$port" --sharding hybrid "${extra[@]}")
    TK_NO_KEEP=1 NCCL_HOSTID=node-a CUDA_VISIBLE_DEVICES=0,1 train "$name" "${common[@]}" --node-rank 0 &
    first=$!
    # The second "node" writes its (empty) logs elsewhere: rank 0 writes the run directory.
    (NCCL_HOSTID=node-b CUDA_VISIBLE_DEVICES=2,3 timeout 500 node .gpu/trainer/trainer-cli.mjs --device cuda \
      --model "$model" --data .gpu/data --out "$(run_dir "$name")" --seq-len 2048 --micro-batch 4 --global-batch 16 \
      --scale "$(python3 -c "print($steps*16*2048/3e12)")" --eval-batches 0 --save-every 0 --lr-max 4e-5 --lr-min 4e-6 "${common[@]}" \
      --node-rank 1 >"$out/$name-node1.log" 2>&1)
    second=$?
    wait $first
    first=$?
    keep_run "$name"
    status[$name]="rc=$first/$second: $(compare "$name")"
    grep -E "distributed:" "$out/$name.log"
  done
fi

if want scaling; then
  # tokens/s per GPU at 1, 2, 4 GPUs with real accumulation (global batch 64 x 2048 tokens,
  # micro-batch 8): the issue asks for >= 90% of the 1-GPU figure per GPU at 4 GPUs.
  # TK_SCALING: the GPU counts (No: with --comm-overlap on), about 75 s each.
  for n in ${TK_SCALING:-1 4 4o 2}; do
    g=${n%o}
    [ "$gpus" -ge "$g" ] || continue
    stage "scaling: $n GPU(s)"
    rm -rf "$out/scale-$n" "$(run_dir "scale-$n")"
    launch=(); [ "$g" -gt 1 ] && launch=(--nproc-per-node "$g")
    [ "$n" != "$g" ] && launch+=(--comm-overlap on)
    timeout 500 node .gpu/trainer/trainer-cli.mjs --device cuda --model tinyllama-1.1b --data .gpu/data \
      --out "$(run_dir "scale-$n")" --seq-len 2048 --micro-batch 8 --global-batch 64 \
      --scale "$(python3 -c 'print(8*64*2048/3e12)')" --eval-batches 0 --save-every 0 "${launch[@]}" \
      >"$out/scale-$n.log" 2>&1
    status[scale-$n]="rc=$?"
    keep_run "scale-$n"
  done
  python3 - "$out" <<'PY' | tee "$out/scaling.md"
import json, statistics, sys, os
out = sys.argv[1]
print("| GPUs | tokens/s (all) | tokens/s per GPU | vs 1 GPU | memory per GPU (GiB, planned) |")
print("| --- | --- | --- | --- | --- |")
base = None  # the 1-GPU run's tokens/s; without one in this call the column says "-"
for name in ("1", "2", "4", "2o", "4o"):
    n = int(name.rstrip("o"))
    p = f"{out}/scale-{name}/v1.0/metrics.jsonl"
    if not os.path.exists(p): continue
    rs = [r for r in map(json.loads, open(p)) if r["kind"] == "train"][2:]
    if not rs: continue
    tps = statistics.median(r["tokensPerSec"] for r in rs)
    per = tps / n
    if n == 1: base = per
    label = f"{n} (--comm-overlap on)" if name.endswith("o") else str(n)
    print(f"| {label} | {tps:,.0f} | {per:,.0f} | {f"{per / base:.1%}" if base else "-"} | {rs[-1]['memoryBytes'] / 2**30:.1f} |")
PY
fi

echo
echo "== summary"
for k in build collectives-2 collectives-4 kill 1gpu 2gpu-full 2gpu-overlap 4gpu-full 4gpu-overlap 4gpu-hybrid 4gpu-hybrid-overlap scale-1 scale-2 scale-4 scale-2o scale-4o; do
  [ -n "${status[$k]:-}" ] && echo "$k: ${status[$k]}"
done
[ -f "$out/scaling.md" ] && cat "$out/scaling.md"
grep -h "^ranks op\|bus" "$out"/collectives-*.log 2>/dev/null | head -30
# exit status: 1 if any run failed (a non-zero rc, or a FAIL in its comparison), else 0
failed=0
for k in "${!status[@]}"; do
  case "${status[$k]}" in *FAIL*) failed=1 ;; ok:* | rc=0 | rc=0[,:]* | rc=0/0*) ;; *) failed=1 ;; esac
done
exit $failed
