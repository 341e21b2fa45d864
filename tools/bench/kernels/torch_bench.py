"""PyTorch side of the kernels benchmark (GPU machine only; reference, never product code).

1. Correctness: reads the dump written by bench.ts (--dump DIR), recomputes every op in fp32
   from the same bf16 inputs with PyTorch (autograd for the backward passes, transformers'
   rotary code for RoPE when importable) and prints ||ours - ref|| / ||ref|| next to the same
   error of PyTorch's own bf16 computation where one exists.
2. Speed: times PyTorch eager (bf16) on the same ops and shapes as bench.ts with CUDA events
   (median of repeats after warm-up), then prints the joined table with ratio = torch / ours
   (> 1: ours is faster) and writes it as markdown.

Usage: python3 torch_bench.py --ours kernels-bench.json --dump DIR --md out.md [--compare-only]
(--compare-only: stop after the correctness comparison; exit 1 on any failure)
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
from cuda_timing import timed

p = argparse.ArgumentParser()
p.add_argument("--ours", required=True)
p.add_argument("--dump")
p.add_argument("--md", default="kernels-bench.md")
p.add_argument("--compare-only", action="store_true")
args = p.parse_args()
dev = "cuda"
torch.backends.cuda.matmul.allow_tf32 = False


def rel(a, b):
    a = a.double()
    b = b.double()
    if torch.isnan(a).any():
        return float("inf")
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


# ------------------------------------------------------------------ correctness
cmp_rows = []


def load(d, meta, name):
    t = meta["tensors"][name]
    raw = open(os.path.join(d, t["file"]), "rb").read()
    import numpy as np

    if t["dtype"] == "bf16":
        x = torch.from_numpy(np.frombuffer(raw, dtype=np.int16).copy()).view(torch.bfloat16)
    elif t["dtype"] == "f32":
        x = torch.from_numpy(np.frombuffer(raw, dtype=np.float32).copy())
    elif t["dtype"] == "i32":
        x = torch.from_numpy(np.frombuffer(raw, dtype=np.int32).copy())
    else:
        raise ValueError(t["dtype"])
    return x.reshape(t["shape"]).to(dev)


def check(op, out, ours, ref, torch_bf16=None, tol=2e-2):
    e = rel(ours.float(), ref.float())
    te = rel(torch_bf16.float(), ref.float()) if torch_bf16 is not None else None
    ok = e <= tol or (te is not None and e <= 2 * te)
    cmp_rows.append((op, out, e, te, ok))


def rope_cos_sin(T, D, base):
    try:  # the real Hugging Face code path
        from transformers import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        cfg = LlamaConfig(hidden_size=D * 32, num_attention_heads=32, rope_theta=base, max_position_embeddings=T)
        emb = LlamaRotaryEmbedding(config=cfg).to(dev)
        pos = torch.arange(T, device=dev)[None]
        cos, sin = emb(torch.zeros(1, device=dev), pos)
        return cos.float()[0], sin.float()[0], "transformers LlamaRotaryEmbedding"
    except Exception as err:  # noqa: BLE001
        inv = 1.0 / (base ** (torch.arange(0, D, 2, device=dev).float() / D))
        f = torch.outer(torch.arange(T, device=dev).float(), inv)
        e = torch.cat([f, f], -1)
        return e.cos(), e.sin(), f"own formula ({type(err).__name__})"


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


if args.dump:
    d = args.dump
    for meta in json.load(open(os.path.join(d, "manifest.json"))):
        op = meta["op"]
        L = lambda n: load(d, meta, n)  # noqa: E731
        if op == "linear":
            x, w = L("x"), L("w")
            ref = x.float() @ w.float().T
            check(op, "y = x W^T (bf16)", L("y"), ref, F.linear(x, w))
            dy = L("dy")
            ref = L("dw0") + dy.float().T @ x.float()
            check(op, "dW += dy^T x (f32)", L("dw"), ref, L("dw0") + (dy.T @ x).float(), tol=1e-2)
        elif op == "rmsnorm":
            eps = meta["params"]["eps"]
            x, res, w = L("x"), L("res"), L("w")
            h = (x.float() + res.float())
            check(op, "residual sum", L("ro"), h, (x + res))
            hb = L("ro").float().requires_grad_(True)
            wf = w.float().requires_grad_(True)
            out = hb * torch.rsqrt(hb.pow(2).mean(-1, keepdim=True) + eps) * wf
            check(op, "out", L("out"), out.detach())
            check(op, "rstd", L("rstd"), torch.rsqrt(hb.detach().pow(2).mean(-1) + eps), tol=1e-3)
            out.backward(L("dOut").float())
            check(op, "dx", L("dx") - L("dx0"), hb.grad)
            check(op, "dW", L("dw") - L("dw0"), wf.grad, tol=1e-2)
        elif op == "rope":
            q = L("q").float()
            T, D = q.shape[1], q.shape[3]
            cos, sin, how = rope_cos_sin(T, D, meta["params"]["base"])
            c, s = cos[None, :, None, :], sin[None, :, None, :]
            ref = q * c + rotate_half(q) * s
            qb = L("q")
            check(op, f"out vs {how}", L("out"), ref, qb * c.bfloat16() + rotate_half(qb) * s.bfloat16())
            check(op, "backward(out) = q", L("back"), q)
        elif op == "attention":
            q, k, v = L("q"), L("k"), L("v")
            H, Hkv = q.shape[2], k.shape[2]
            qf = q.float().transpose(1, 2).requires_grad_(True)
            kf = k.float().transpose(1, 2).requires_grad_(True)
            vf = v.float().transpose(1, 2).requires_grad_(True)
            rep = H // Hkv
            kr, vr = kf.repeat_interleave(rep, 1), vf.repeat_interleave(rep, 1)
            s = (qf @ kr.transpose(-1, -2)) / (q.shape[-1] ** 0.5)
            T = q.shape[1]
            mask = torch.ones(T, T, device=dev, dtype=torch.bool).tril()
            s = s.masked_fill(~mask, float("-inf"))
            lse = torch.logsumexp(s, -1)
            o = torch.softmax(s, -1) @ vr
            sdpa = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=True
            )
            check(op, "out", L("out"), o.transpose(1, 2).detach(), sdpa.transpose(1, 2))
            check(op, "lse", L("lse"), lse.detach(), tol=1e-3)
            o.backward(L("dO").float().transpose(1, 2))
            qb = q.transpose(1, 2).detach().requires_grad_(True)
            kb = k.transpose(1, 2).detach().requires_grad_(True)
            vb = v.transpose(1, 2).detach().requires_grad_(True)
            F.scaled_dot_product_attention(qb, kb, vb, is_causal=True, enable_gqa=True).backward(L("dO").transpose(1, 2))
            check(op, "dq", L("dq"), qf.grad.transpose(1, 2), qb.grad.transpose(1, 2), tol=3e-2)
            check(op, "dk", L("dk"), kf.grad.transpose(1, 2), kb.grad.transpose(1, 2), tol=3e-2)
            check(op, "dv", L("dv"), vf.grad.transpose(1, 2), vb.grad.transpose(1, 2), tol=3e-2)
        elif op == "swiglu":
            g = L("g").float().requires_grad_(True)
            u = L("u").float().requires_grad_(True)
            out = F.silu(g) * u
            check(op, "out", L("out"), out.detach(), F.silu(L("g")) * L("u"))
            out.backward(L("dOut").float())
            check(op, "dGate", L("dg"), g.grad)
            check(op, "dUp", L("du"), u.grad)
        elif op == "cross_entropy":
            lg = L("logits").float().requires_grad_(True)
            tg = L("targets").long()
            loss = F.cross_entropy(lg, tg, reduction="none")
            check(op, "losses", L("losses"), loss.detach(), tol=1e-3)
            (loss.sum() * meta["params"]["dlossScale"]).backward()
            check(op, "dlogits (in place)", L("dlogits"), lg.grad)
        elif op == "embedding":
            table = L("table").float().requires_grad_(True)
            ids = L("ids").long()
            out = F.embedding(ids, table)
            check(op, "out", L("out"), out.detach(), tol=0)
            out.backward(L("dOut").float())
            check(op, "dTable", L("dTable"), table.grad, tol=1e-5)
        elif op == "adamw":
            pr = meta["params"]
            w = torch.nn.Parameter(L("master0").clone())
            w.grad = L("grad") * pr["gradScale"]
            opt = torch.optim.AdamW([w], lr=pr["lr"], betas=(pr["beta1"], pr["beta2"]), eps=pr["eps"], weight_decay=pr["weightDecay"])
            st = opt.state[w]
            st["step"] = torch.tensor(float(pr["step"] - 1))
            st["exp_avg"] = L("m0").clone()
            st["exp_avg_sq"] = L("v0").clone()
            opt.step()
            check(op, "master vs torch.optim.AdamW", L("master"), w.detach(), tol=1e-6)
            check(op, "m", L("m"), st["exp_avg"], tol=1e-6)
            check(op, "v", L("v"), st["exp_avg_sq"], tol=1e-6)
            check(op, "bf16 param = round(our master)", L("param"), L("master").bfloat16(), tol=0)
    print("\n== PyTorch comparison (batch 1 x 2048, TinyLlama widths; fp32 reference from the same bf16 inputs)")
    for op, out, e, te, ok in cmp_rows:
        tes = f"{te:.2e}" if te is not None else "   -    "
        print(f"{'PASS' if ok else 'FAIL'}  {op:14s} {out:34s} ours={e:.2e}  torch-bf16={tes}")
    print(f"torch comparison: {sum(r[4] for r in cmp_rows)}/{len(cmp_rows)} passed")
if args.compare_only:
    raise SystemExit(0 if cmp_rows and all(r[4] for r in cmp_rows) else 1)

# ------------------------------------------------------------------ speed
ours = json.load(open(args.ours))
sh = ours["shapes"]
B, T, C, I, H, Hkv, D, V = (sh[k] for k in "B T C I H Hkv D V".split())
N = B * T
del_list = []


def rnd(*shape, dtype=torch.bfloat16, std=1.0):
    return (torch.randn(*shape, device=dev) * std).to(dtype)


theirs = {}
with torch.no_grad():
    src = rnd(1 << 29)
    dst = torch.empty_like(src)
    theirs["copy 1 GiB (d2d)"] = timed(lambda: dst.copy_(src))
    del src, dst
    src = rnd(2 * N * C)  # the residual + RMSNorm forward's bytes
    dst = torch.empty_like(src)
    theirs[f"copy {2 * 2 * N * C // 2**20} MiB (d2d)"] = timed(lambda: dst.copy_(src))
    del src, dst
    for name, inF, outF in [("qkv", C, C + 2 * Hkv * D), ("k or v proj", C, Hkv * D), ("attn out", C, C), ("mlp gate+up", C, 2 * I), ("mlp down", I, C), ("lm head", C, V)]:
        x, w, dy = rnd(N, inF), rnd(outF, inF, std=0.02), rnd(N, outF)
        theirs[f"matmul {name} fwd"] = timed(lambda: F.linear(x, w))
        theirs[f"matmul {name} dgrad"] = timed(lambda: dy @ w)
        theirs[f"matmul {name} wgrad (f32 +=)"] = timed(lambda: dy.T @ x)  # bf16 out: torch has no bf16->f32 += GEMM
        del x, w, dy
    q, k, v = rnd(B, H, T, D), rnd(B, Hkv, T, D), rnd(B, Hkv, T, D)
    theirs["attention fwd (causal GQA)"] = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
    qt = rnd(B, T, H, D)
    cos, sin = torch.randn(1, T, 1, D, device=dev).bfloat16(), torch.randn(1, T, 1, D, device=dev).bfloat16()
    theirs["rope fwd (q, in place)"] = timed(lambda: qt * cos + rotate_half(qt) * sin)
    x, res, w = rnd(N, C), rnd(N, C), rnd(C)

    def rms():
        h = x + res
        hf = h.float()
        return w * (hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + 1e-5)).bfloat16(), h

    theirs["residual + rmsnorm fwd"] = timed(rms)
    g, u = rnd(N, I), rnd(N, I)
    theirs["swiglu fwd"] = timed(lambda: F.silu(g) * u)
    table = rnd(V, C)
    ids = torch.randint(0, V, (N,), device=dev)
    theirs["embedding fwd"] = timed(lambda: F.embedding(ids, table))
    big = 1_100_048_384
    gr = torch.full((big,), 0.001, device=dev)
    theirs["sumSquares 1.1B f32 grads"] = timed(lambda: torch.linalg.vector_norm(gr), iters=3)
    del gr, q, k, v, qt, x, res, g, u, table

# backward passes with autograd: time(fwd+bwd) - time(fwd)
q, k, v = (rnd(B, H, T, D).requires_grad_(), rnd(B, Hkv, T, D).requires_grad_(), rnd(B, Hkv, T, D).requires_grad_())
dO = rnd(B, H, T, D)
fb = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True).backward(dO), iters=3)
theirs["attention bwd"] = fb - theirs["attention fwd (causal GQA)"]
theirs["attention fwd+bwd"] = fb
del q, k, v, dO
x = rnd(N, C).requires_grad_()
w = rnd(C).requires_grad_()
dOut = rnd(N, C)


def rms_fb():
    hf = x.float()
    (w * (hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + 1e-5)).bfloat16()).backward(dOut)


theirs["rmsnorm bwd (dx +=, dW +=)"] = timed(rms_fb) - theirs["residual + rmsnorm fwd"]
del x, w, dOut
g, u, dh = rnd(N, I).requires_grad_(), rnd(N, I).requires_grad_(), rnd(N, I)
theirs["swiglu bwd"] = timed(lambda: (F.silu(g) * u).backward(dh)) - theirs["swiglu fwd"]
del g, u, dh
logits = rnd(N, V, std=2).requires_grad_()
tg = torch.randint(0, V, (N,), device=dev)
theirs["cross-entropy fwd+grad (in place)"] = timed(lambda: F.cross_entropy(logits.float(), tg).backward())
with torch.no_grad():
    theirs["argmax over rows (greedy tokens)"] = timed(lambda: logits.argmax(dim=-1))
del logits
table = rnd(V, C).requires_grad_()
ids = torch.randint(0, V, (N,), device=dev)
dOut = rnd(N, C)
theirs["embedding bwd (deterministic)"] = timed(lambda: F.embedding(ids, table).backward(dOut)) - theirs["embedding fwd"]
del table, dOut
wbig = torch.nn.Parameter(torch.full((1_100_048_384,), 0.02, device=dev))
wbig.grad = torch.full_like(wbig, 0.001)
opt = torch.optim.AdamW([wbig], lr=4e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
theirs["adamw 1.1B (bf16 param + f32 master)"] = timed(opt.step, iters=3)
del wbig, opt

# torch.compile for the fused elementwise/row ops (inductor generates fused kernels)
compiled = {}
compile_notes = []


def try_compile(name, fn, *a, iters=10):
    import time as _t

    try:
        cf = torch.compile(fn)
        t0 = _t.time()
        cf(*a)
        torch.cuda.synchronize()
        compiled[name] = timed(lambda: cf(*a), iters)
        compile_notes.append(f"{name}: compiled in {_t.time() - t0:.0f} s")
    except Exception as err:  # noqa: BLE001
        compile_notes.append(f"{name}: torch.compile failed ({type(err).__name__}: {str(err)[:80]})")


if os.environ.get("TK_TORCH_COMPILE", "1") == "1":
    with torch.no_grad():
        x, res, w = rnd(N, C), rnd(N, C), rnd(C)

        def rms_fn(x, res, w):
            h = x + res
            hf = h.float()
            return w * (hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + 1e-5)).bfloat16(), h

        try_compile("residual + rmsnorm fwd", rms_fn, x, res, w)
        g, u = rnd(N, I), rnd(N, I)
        try_compile("swiglu fwd", lambda g, u: F.silu(g) * u, g, u)
        qt = rnd(B, T, H, D)
        cos, sin = torch.randn(1, T, 1, D, device=dev).bfloat16(), torch.randn(1, T, 1, D, device=dev).bfloat16()
        try_compile("rope fwd (q, in place)", lambda q, c, s_: q * c + rotate_half(q) * s_, qt, cos, sin)
        del x, res, w, g, u, qt
    logits = rnd(N, V, std=2).requires_grad_()
    tg = torch.randint(0, V, (N,), device=dev)
    ce = torch.compile(lambda lg, t: F.cross_entropy(lg.float(), t))
    try_compile("cross-entropy fwd+grad (in place)", lambda lg, t: ce(lg, t).backward(), logits, tg)
    del logits

tiny = torch.ones(1, device=dev)
n = 20000
torch.cuda.synchronize()
import time

t0 = time.perf_counter()
for _ in range(n):
    tiny.mul_(1.0)
torch.cuda.synchronize()
torch_overhead = (time.perf_counter() - t0) / n * 1e6

# ------------------------------------------------------------------ joined table
lines = [
    f"Device: {torch.cuda.get_device_name()} | torch {torch.__version__} | ours: {ours['device']['name']} ({ours['device']['detail']})",
    f"Shapes: B={B} T={T} C={C} I={I} H={H}/{Hkv} D={D} V={V}; bf16 activations; times are medians of 3 repeats.",
    "",
    "| op | ours ms | ours TFLOP/s or GB/s | torch eager ms | eager / ours | torch.compile ms | compile / ours |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
]
copy_gbps = None
for row in ours["rows"]:
    op, ms = row["op"], row["ms"]
    rate = f"{row['tflops']:.1f} TFLOP/s" if row.get("tflops") else (f"{row['gbps']:.0f} GB/s" if row.get("gbps") else "")
    if op.startswith("copy 1 GiB"):
        copy_gbps = row.get("gbps")
    t = theirs.get(op)
    tc = compiled.get(op)
    eager = f"{t:.3f} | {t / ms:.2f}" if t else "- | -"
    comp = f"{tc:.3f} | {tc / ms:.2f}" if tc else "- | -"
    lines.append(f"| {op} | {ms:.3f} | {rate} | {eager} | {comp} |")
if "attention fwd+bwd" in theirs:
    ours_fb = sum(r["ms"] for r in ours["rows"] if r["op"] in ("attention fwd (causal GQA)", "attention bwd"))
    lines.append(f"| attention fwd+bwd (torch: SDPA) | {ours_fb:.3f} | | {theirs['attention fwd+bwd']:.3f} | {theirs['attention fwd+bwd'] / ours_fb:.2f} | - | - |")
lines.append("")
if copy_gbps:
    lines.append(f"Measured copy bandwidth (ceiling for memory-bound ops): {copy_gbps:.0f} GB/s.")
for name, us in ours["overhead"].items():
    lines.append(f"- {name}: {us:.2f} us")
lines.append(f"- torch eager tiny.mul_(1.0): host time per call: {torch_overhead:.2f} us")
lines.append("- torch wgrad rows time a bf16-output GEMM (torch has no bf16 x bf16 -> f32 += GEMM); ours accumulate in f32.")
lines.append("- torch backward rows are autograd (fwd+bwd) minus fwd; attention rows are torch's scaled_dot_product_attention with the backend torch picks (cuDNN on Hopper with torch 2.11; attention_table.py times flash separately).")
for note in compile_notes:
    lines.append(f"- torch.compile {note}")
md = "\n".join(lines)
open(args.md, "w").write(md + "\n")
print("\n== Speed vs PyTorch eager, same card, same run\n" + md)
if cmp_rows and not all(r[4] for r in cmp_rows):
    raise SystemExit(1)
