"""Attention kernels side by side with PyTorch's SDPA on the same card (GPU machine only).

Reads the bench.ts JSON of each kernel (`--only attention`, run with TINYLLAMA_ATTENTION=wmma
and =mma, and optionally more runs named on the command line), times F.scaled_dot_product_attention (causal, GQA, bf16; flash backend where torch
picks it) forward and forward+backward at the same shapes with CUDA events (median of 3
repeats after warm-up), and prints a markdown table: ms, TFLOP/s, SDPA / ours (> 1: ours is
faster). Causal FLOPs: forward 2*B*H*T*T*D, backward 2.5x forward.
Usage: python3 attention_table.py --wmma kernels-bench-wmma.json --mma kernels-bench-mma.json [--run name=bench.json ...]
"""
import argparse
import json

import torch
import torch.nn.functional as F
from cuda_timing import timed

p = argparse.ArgumentParser()
p.add_argument("--wmma", required=True)
p.add_argument("--mma", required=True)
p.add_argument("--run", action="append", default=[], metavar="NAME=JSON", help="another kernels-bench JSON (a variant)")
args = p.parse_args()

FWD, BWD = "attention fwd (causal GQA)", "attention bwd"
runs = {}
named = [("wmma", args.wmma), ("mma", args.mma)] + [tuple(r.split("=", 1)) for r in args.run]
for name, path in named:
    try:
        runs[name] = {r["op"]: r["ms"] for r in json.load(open(path))["rows"]}
    except (OSError, ValueError, KeyError) as err:
        print(f"{name}: no results ({err})")
first = json.load(open(args.mma if "mma" in runs else args.wmma))
sh = first["shapes"]
B, T, H, Hkv, D = sh["B"], sh["T"], sh["H"], sh["Hkv"], sh["D"]


def rnd(*shape):
    return torch.randn(*shape, device="cuda").bfloat16()


def sdpa_times(backend=None):
    """fwd, bwd and fwd+bwd ms of SDPA, with torch's own choice (None) or one forced backend."""
    from contextlib import nullcontext

    from torch.nn.attention import sdpa_kernel

    ctx = (lambda: nullcontext()) if backend is None else (lambda: sdpa_kernel(backend))
    q, k, v = rnd(B, H, T, D), rnd(B, Hkv, T, D), rnd(B, Hkv, T, D)
    attn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)  # noqa: E731
    with ctx(), torch.no_grad():
        fwd = timed(attn)
    q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
    dO = rnd(B, H, T, D)
    with ctx():
        fb = timed(lambda: attn().backward(dO), iters=3)
    return {FWD: fwd, BWD: fb - fwd, "fwd+bwd": fb}


sdpa = sdpa_times()
# The comparator is "flash SDPA"; torch may pick another backend (cuDNN on Hopper), so
# each backend is also timed on its own (a backend that refuses these shapes is reported).
from torch.nn.attention import SDPBackend  # noqa: E402

by_backend = {}
for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):
    try:
        by_backend[name] = sdpa_times(getattr(SDPBackend, name))
    except Exception as err:  # noqa: BLE001 - reported, not fatal
        by_backend[name] = str(err).splitlines()[0][:100]

fwd_flops = 4 * B * H * T * T * D / 2
flops = {FWD: fwd_flops, BWD: 2.5 * fwd_flops, "fwd+bwd": 3.5 * fwd_flops}
print(f"\n== Attention, {torch.cuda.get_device_name()}, torch {torch.__version__}: B={B} T={T} H={H}/{Hkv} D={D}, causal, bf16")
print("| pass | kernel | ms | TFLOP/s | SDPA ms | SDPA TFLOP/s | SDPA / ours |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for op in (FWD, BWD, "fwd+bwd"):
    for name, rows in runs.items():
        ms = rows[FWD] + rows[BWD] if op == "fwd+bwd" and FWD in rows and BWD in rows else rows.get(op)
        if not ms:
            continue
        t = sdpa[op]
        print(f"| {op} | {name} | {ms:.3f} | {flops[op] / ms / 1e9:.1f} | {t:.3f} | {flops[op] / t / 1e9:.1f} | {t / ms:.2f} |")
print("SDPA backward = time(fwd+bwd) - time(fwd), autograd.")
print("\nSDPA by backend (torch's default choice first), against each of our runs:")
print("| SDPA backend | fwd ms | bwd ms | fwd+bwd ms | fwd+bwd TFLOP/s | SDPA / ours, fwd+bwd |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
ours_fb = {n: r[FWD] + r[BWD] for n, r in runs.items() if n != "wmma" and FWD in r and BWD in r}
for name, t in [("default", sdpa)] + list(by_backend.items()):
    if isinstance(t, str):
        print(f"| {name} | - | - | - | - | refused: {t} |")
        continue
    ratios = ", ".join(f"{n} {t['fwd+bwd'] / ms:.2f}" for n, ms in ours_fb.items()) or "-"
    print(f"| {name} | {t[FWD]:.3f} | {t[BWD]:.3f} | {t['fwd+bwd']:.3f} | {flops['fwd+bwd'] / t['fwd+bwd'] / 1e9:.1f} | {ratios} |")
