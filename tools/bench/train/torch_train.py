#!/usr/bin/env python3
"""PyTorch reference for the training-throughput table (issue: TinyLlama 1.1B at 50% MFU).

  python3 torch_train.py --out torch.json [--micro-batch 8 16] [--global-batch 16] [--steps 8]
                         [--modes eager compile]

transformers' LlamaForCausalLM at the TinyLlama 1.1B shape (22 layers, 2048 hidden, 5632
intermediate, 32/4 heads, vocab 32000, untied), SDPA attention, fp32 master weights under bf16
autocast (the same mixed precision as our trainer), fused AdamW (0.9, 0.95, eps 1e-8, wd 0.1),
clipping at 1.0, sequence 2048, random tokens. One optimizer step = the global batch in
micro-batches (gradient accumulation). Times steps after warm-up with CUDA synchronisation;
reports tokens/s, MFU at 7.15 GFLOP/token against 989 TFLOP/s and against the measured
8192^3 bf16 matmul rate, step time and peak memory (torch.cuda.max_memory_allocated).
A configuration that runs out of memory is reported as OOM, not dropped.
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

FLOPS_PER_TOKEN = 7.15e9
PEAK = 989e12


def matmul_rate():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    n = 20
    t = time.perf_counter()
    for _ in range(n):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * n / (time.perf_counter() - t)


def config():
    return LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                       num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                       rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                       attn_implementation="sdpa")


def run(mode, micro, global_batch, steps, warmup, seq):
    torch.manual_seed(0)
    model = LlamaForCausalLM(config()).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
    fwd = torch.compile(model) if mode == "compile" else model
    accum = global_batch // micro
    g = torch.Generator(device="cuda").manual_seed(1)
    data = torch.randint(0, 32000, (accum, micro, seq + 1), device="cuda", generator=g)

    def step():
        for a in range(accum):
            x = data[a, :, :-1]
            y = data[a, :, 1:]
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = fwd(input_ids=x).logits
            loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    tokens = global_batch * seq
    return dict(mode=mode, micro_batch=micro, global_batch=global_batch, seq=seq, step_s=med,
                tokens_per_s=tokens / med, mfu=tokens / med * FLOPS_PER_TOKEN / PEAK,
                peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30, warmup_s=first,
                loss=float(loss), steps=steps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--micro-batch", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--global-batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--modes", nargs="+", default=["eager", "compile"])
    args = ap.parse_args()
    res = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, matmul_8192_tflops=matmul_rate() / 1e12, rows=[])
    print(f"{res['device']}: 8192^3 bf16 matmul {res['matmul_8192_tflops']:.1f} TFLOP/s", flush=True)
    for mode in args.modes:
        for micro in args.micro_batch:
            try:
                row = run(mode, micro, args.global_batch, args.steps, args.warmup, args.seq)
            except torch.OutOfMemoryError:
                row = dict(mode=mode, micro_batch=micro, global_batch=args.global_batch, seq=args.seq, oom=True)
            torch.cuda.empty_cache()
            res["rows"].append(row)
            print(json.dumps(row), flush=True)
            json.dump(res, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
