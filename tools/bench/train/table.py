#!/usr/bin/env python3
"""Prints the training-throughput table from a run-gpu.sh output directory: ours (metrics.jsonl
of each ours-mb*/ run: median step after the first two, the --profile-step step excluded) and
PyTorch (torch.json), tokens/s, MFU against 989 TFLOP/s and against the measured 8192^3 bf16
matmul rate, step time and memory."""
import glob
import json
import os
import statistics
import sys

FLOPS_PER_TOKEN = 7.15e9
PEAK = 989e12


def main(d):
    torch = {"rows": []}
    for path in sorted(glob.glob(os.path.join(d, "torch*.json"))):
        t = json.load(open(path))
        torch = {**t, "rows": torch["rows"] + t["rows"]}
    mm = torch.get("matmul_8192_tflops")
    rows = []
    for run in sorted(glob.glob(os.path.join(d, "ours-mb*"))):
        if not os.path.isdir(run):
            continue
        recs = []
        for path in glob.glob(os.path.join(run, "**", "metrics.jsonl"), recursive=True):
            recs += [json.loads(l) for l in open(path) if l.strip()]
        steps = [r for r in recs if r.get("kind") == "train"]
        prof = [json.load(open(p))["step"] for p in glob.glob(os.path.join(run, "**", "profile.json"), recursive=True)]
        timed = [r for r in steps[2:] if r["step"] not in prof]
        mb = run.rsplit("mb", 1)[1]
        name = "ours"
        if mb.endswith("-recompute"):  # TK_RECOMPUTE_MICRO runs
            mb, name = mb[: -len("-recompute")], "ours, --recompute layers"
        if not timed:
            rows.append((name, mb, None))
            continue
        s = statistics.median(r["stepSeconds"] for r in timed)
        tokens = timed[0]["tokensPerSec"] * timed[0]["stepSeconds"]
        mem = max(r["memoryBytes"] for r in timed) / 2**30
        rows.append((name, mb, dict(step_s=s, tokens_per_s=tokens / s, mem=mem, n=len(timed))))
    for r in torch["rows"]:
        name = f"transformers {r['mode']}"
        rows.append((name, str(r["micro_batch"]), None if r.get("oom") else dict(step_s=r["step_s"], tokens_per_s=r["tokens_per_s"], mem=r["peak_mem_gib"], n=r["steps"])))
    print(f"TinyLlama 1.1B, sequence 2048, global batch 16 x 2048 per step, {torch.get('device', '?')}; "
          f"8192^3 bf16 matmul: {mm:.1f} TFLOP/s" if mm else "")
    print("| trainer | micro-batch | tokens/s | MFU (989 TFLOP/s) | share of matmul rate | step s | memory GiB | steps timed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, mb, r in rows:
        if r is None:
            print(f"| {name} | {mb} | OOM or failed | | | | | |")
            continue
        flops = r["tokens_per_s"] * FLOPS_PER_TOKEN
        share = f"{100 * flops / (mm * 1e12):.1f}%" if mm else "-"
        print(f"| {name} | {mb} | {r['tokens_per_s']:,.0f} | {100 * flops / PEAK:.1f}% | {share} | {r['step_s']:.3f} | {r['mem']:.1f} | {r['n']} |")
    print("memory: ours = device bytes the trainer holds (arenas: weights, grads, optimizer, activations); "
          "transformers = torch.cuda.max_memory_allocated.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench-train")
