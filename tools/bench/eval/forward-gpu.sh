#!/usr/bin/env bash
# GPU machine: where eval's scoring forward spends its time, and what batch padding costs.
# Prepare on the dev machine with `bash tools/bench/eval/prepare.sh 200` (after pnpm build);
# carry .gpu. Parts (default: both):
#   profile  tools/bench/eval/profile-forward.mjs (per-op device time, f32 and bf16, 8 batches of
#            32 x 256) beside transformers' forward + log_softmax on the same shapes, timed and
#            with torch.profiler's kernel table
#   padding  `pnpm eval` on the synthetic tasks with --pad-multiple 64 and 8, f32 and bf16,
#            2 alternated rounds, then per-request log-probs and acc of 8 against 64
# Logs and JSON go to $OUT (or /tmp/eval-forward).
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PATH=/usr/local/cuda/bin:$PATH
out=${OUT:-/tmp/eval-forward}
mkdir -p "$out"
parts=${*:-profile padding}
want() { case " $parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
bash .gpu/setup.sh >/dev/null || { echo "node setup failed"; exit 1; }
build=/tmp/tk-build
bash tools/gpu/build-kernels.sh "$build" "$out/build.log" || { tail -20 "$out/build.log"; exit 1; }
export TINYLLAMA_KERNELS_BUILD_DIR=$build
model=/tmp/eval-model
python3 tools/bench/eval/make_model.py "$model" .gpu/llama2-tokenizer.model --shape 1.1b --dtype bfloat16 2>&1 | grep -v Warning | tail -1

if want profile; then
  for d in f32 bf16; do
    node .gpu/profile-forward.mjs --checkpoint "$model" --dtype $d --windows 256 --length 256 --batch-size 32 2>&1 | head -24 | tee "$out/profile-$d.md"
  done
  python3 - "$model" <<'PY'
import sys, time, torch
from torch.profiler import ProfilerActivity, profile
from transformers import LlamaForCausalLM
for dt in (torch.float32, torch.bfloat16):
    m = LlamaForCausalLM.from_pretrained(sys.argv[1], torch_dtype=dt).cuda().eval()
    ids = torch.randint(3, 32000, (32, 256), device="cuda")
    with torch.no_grad():
        for _ in range(2): m(ids).logits.float().log_softmax(-1)
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(8): m(ids).logits.float().log_softmax(-1)
        torch.cuda.synchronize()
        print(dt, "transformers forward + log_softmax, 8 batches of 32 x 256:", round((time.perf_counter() - t) * 1000, 1), "ms")
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            for _ in range(8): m(ids).logits.float().log_softmax(-1)
            torch.cuda.synchronize()
    print(p.key_averages().table(sort_by="cuda_time_total", row_limit=12))
    del m
PY
fi

if want padding; then
  tasks=hellaswag,arc_easy,boolq,piqa,winogrande
  for r in 1 2; do for d in f32 bf16; do for p in 64 8; do
    node .gpu/eval-cli.mjs --checkpoint "$model" --data-dir .gpu/eval-data --tasks "$tasks" --device cuda \
      --dtype $d --batch-size 32 --pad-multiple $p --log-samples --output "$out/$d-p$p-r$r" >"$out/$d-p$p-r$r.log" 2>&1
    node -e 'const r = require(process.argv[1] + "/results.json"); const t = r.tinyllama_ts;
      const acc = Object.entries(r.results).map(([k, v]) => `${k}=${String(v["acc,none"]).slice(0, 6)}`).join(" ");
      console.log(process.argv[1].split("/").pop(), t.requests, "req", t.scoring_seconds.toFixed(2), "s", t.requests_per_second.toFixed(1), "req/s |", acc)' \
      "$out/$d-p$p-r$r" || tail -3 "$out/$d-p$p-r$r.log"
  done; done; done
  python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
for d in ("f32", "bf16"):
    ref = {}
    for f in glob.glob(f"{out}/{d}-p64-r1/samples_*.jsonl"):
        for line in open(f):
            s = json.loads(line); ref[(os.path.basename(f), s["doc_id"])] = s
    diffs, greedy_same, acc_same, n = [], 0, 0, 0
    for f in glob.glob(f"{out}/{d}-p8-r1/samples_*.jsonl"):
        for line in open(f):
            s = json.loads(line); t = ref[(os.path.basename(f), s["doc_id"])]
            for x, y in zip(s["resps"], t["resps"]):
                diffs.append(abs(x[0] - y[0])); greedy_same += x[1] == y[1]
            n += 1; acc_same += s.get("acc") == t.get("acc")
    print(f"{d} pad 8 vs 64: {n} docs, acc same on {acc_same}, max |log-prob diff| {max(diffs):.3g}, is_greedy same on {greedy_same} of {len(diffs)}")
PY
fi
