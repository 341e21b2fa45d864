#!/usr/bin/env python3
"""Compare @tinyllama/trainer with Hugging Face transformers' LlamaForCausalLM.

Input: a directory written by the trainer's node side (packages/trainer/src/compare/dump.ts):
  init/ (config.json + model.safetensors), batches.safetensors, step0.safetensors, curve.json.

Checks, on the same initial weights and the same batches:
  1. transformers loads init/ unchanged (LlamaForCausalLM.from_pretrained);
  2. step 0: logits, loss and every parameter's gradient agree
     (fp32: max |a - b| <= 1e-4 * max |b| per tensor; bf16: llm.c-style |a - b| <= thr + 0.079 |b|
     with thr a fraction of the tensor's max, loss within 0.05);
  3. training: the same AdamW / clipping / lr per step for every step of curve.json gives the same
     loss curve (fp32: within 1e-3 at every step; bf16: within 0.02).

--ref numpy runs a float64 NumPy Llama forward instead (logits and loss of step 0 only): no torch
needed, so the forward pass can be checked on a laptop. Exit status 0 when every check passes.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

ST_DTYPES = {"F32": np.float32, "I32": np.int32, "I64": np.int64, "U16": np.uint16, "BF16": np.uint16}


def load_safetensors(path):
    """name -> numpy array (memory-mapped; BF16 widened to float32)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        dt = ST_DTYPES[e["dtype"]]
        count = (end - begin) // np.dtype(dt).itemsize
        a = np.memmap(path, dtype=dt, mode="r", offset=base + begin, shape=(count,)).reshape(e["shape"])
        if e["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a
    return out


def rel_max(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))), 1e-30)
    return float(np.max(np.abs(a - b))) / scale


def llm_c_ok(a, b, thr_frac, rtol=0.079):
    """Fraction of elements outside |a-b| <= thr + rtol*|b| (thr = thr_frac * max|b|), and the worst ratio."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    thr = thr_frac * max(float(np.max(np.abs(b))), 1e-30)
    bound = thr + rtol * np.abs(b)
    diff = np.abs(a - b)
    return float(np.mean(diff > bound)), float(np.max(diff / bound))


# ---------------------------------------------------------------- NumPy reference (forward only)
def numpy_forward(weights, cfg, ids):
    """float64 Llama forward with HF semantics (rotate-half RoPE, repeat_kv GQA, RMSNorm, SwiGLU)."""
    C = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or C // H
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta", 10000.0)
    W = lambda n: np.asarray(weights[n], dtype=np.float64)  # noqa: E731
    B, T = ids.shape

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    inv = 1.0 / (theta ** (np.arange(0, D, 2, dtype=np.float64) / D))
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)[None, :, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)[None, :, None, :]

    def rope(x):
        x1, x2 = x[..., : D // 2], x[..., D // 2 :]
        return x * cos + np.concatenate([-x2, x1], axis=-1) * sin

    mask = np.triu(np.full((T, T), -np.inf), k=1)
    x = W("model.embed_tokens.weight")[ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        h = rms(x, W(f"{p}.input_layernorm.weight"))
        q = rope((h @ W(f"{p}.self_attn.q_proj.weight").T).reshape(B, T, H, D))
        k = rope((h @ W(f"{p}.self_attn.k_proj.weight").T).reshape(B, T, Hkv, D))
        v = (h @ W(f"{p}.self_attn.v_proj.weight").T).reshape(B, T, Hkv, D)
        k = np.repeat(k, H // Hkv, axis=2)
        v = np.repeat(v, H // Hkv, axis=2)
        s = np.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        att = np.einsum("bhts,bshd->bthd", s, v).reshape(B, T, H * D)
        x = x + att @ W(f"{p}.self_attn.o_proj.weight").T
        h = rms(x, W(f"{p}.post_attention_layernorm.weight"))
        g = h @ W(f"{p}.mlp.gate_proj.weight").T
        u = h @ W(f"{p}.mlp.up_proj.weight").T
        x = x + (g / (1 + np.exp(-g)) * u) @ W(f"{p}.mlp.down_proj.weight").T
    x = rms(x, W("model.norm.weight"))
    return x @ W("lm_head.weight").T


def cross_entropy(logits, targets):
    m = logits.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))[..., 0]
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return float(np.mean(lse - picked))


def run_numpy(args, meta, tokens, ours):
    cfg = json.load(open(os.path.join(args.dump, "init", "config.json")))
    weights = load_safetensors(os.path.join(args.dump, "init", "model.safetensors"))
    micro, accum = meta["microBatch"], meta["accum"]
    rows = []
    losses = []
    for m in range(accum):
        chunk = np.asarray(tokens[0, m * micro : (m + 1) * micro], dtype=np.int64)
        logits = numpy_forward(weights, cfg, chunk[:, :-1])
        if m == 0:
            rows = logits.reshape(-1, logits.shape[-1])
        losses.append(cross_entropy(logits, chunk[:, 1:]))
    n = ours["logits"].shape[0]
    return {
        "logits_rel_max": rel_max(ours["logits"], rows[:n]),
        "loss_ours": float(ours["loss"][0]),
        "loss_ref": float(np.mean(losses)),
    }


# ---------------------------------------------------------------- transformers reference
def run_transformers(args, meta, tokens, ours):
    import torch
    import torch.nn.functional as F
    from transformers import LlamaForCausalLM

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = args.precision == "bf16"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    init = os.path.join(args.dump, "init")

    def fresh():
        try:
            m = LlamaForCausalLM.from_pretrained(init, dtype=torch.float32, attn_implementation="sdpa")
        except TypeError:
            m = LlamaForCausalLM.from_pretrained(init, torch_dtype=torch.float32, attn_implementation="sdpa")
        return m.to(dev).train()

    model = fresh()
    V = model.config.vocab_size
    micro, accum = meta["microBatch"], meta["accum"]
    tok = torch.from_numpy(np.asarray(tokens, dtype=np.int64))

    def forward_backward(step, keep_logits=False):
        total = 0.0
        first_logits = None
        for m in range(accum):
            chunk = tok[step, m * micro : (m + 1) * micro].to(dev)
            x, y = chunk[:, :-1], chunk[:, 1:]
            with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=x).logits
            loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
            (loss / accum).backward()
            total += loss.item() / accum
            if keep_logits and m == 0:
                first_logits = logits.detach().float().reshape(-1, V).cpu().numpy()
        return total, first_logits

    res = {"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "torch": torch.__version__}
    import transformers

    res["transformers"] = transformers.__version__
    # Step 0: logits, loss, gradients.
    model.zero_grad(set_to_none=True)
    loss0, logits0 = forward_backward(0, keep_logits=True)
    n = ours["logits"].shape[0]
    res["logits_rel_max"] = rel_max(ours["logits"], logits0[:n])
    res["loss_ours"] = float(ours["loss"][0])
    res["loss_ref"] = loss0
    grads = []
    for name, p in model.named_parameters():
        g_ref = p.grad.detach().float().cpu().numpy()
        g_ours = np.asarray(ours[f"grad.{name}"])
        entry = {"name": name, "rel_max": rel_max(g_ours, g_ref)}
        if bf16:
            entry["outside"], entry["worst"] = llm_c_ok(g_ours, g_ref, args.grad_thr)
        grads.append(entry)
    res["grads"] = grads
    del model
    if dev == "cuda":
        torch.cuda.empty_cache()

    # The loss curve with the same optimizer and per-step lr.
    model = fresh()
    a = meta["adamw"]
    opt = torch.optim.AdamW(
        model.parameters(), lr=0.0, betas=(a["beta1"], a["beta2"]), eps=a["eps"], weight_decay=a["weightDecay"]
    )
    curve = []
    t0 = time.time()
    for entry in meta["curve"]:
        for g in opt.param_groups:
            g["lr"] = entry["lr"]
        opt.zero_grad(set_to_none=True)
        loss, _ = forward_backward(entry["step"])
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), a["gradClip"])
        opt.step()
        curve.append({"step": entry["step"], "loss_ref": loss, "loss_ours": entry["loss"], "norm_ref": float(norm), "norm_ours": entry["gradNorm"]})
    if dev == "cuda":
        torch.cuda.synchronize()
    res["ref_seconds_per_step"] = (time.time() - t0) / max(1, len(curve))
    res["ours_seconds_per_step"] = float(np.mean([c["seconds"] for c in meta["curve"][1:]] or [0]))
    res["curve"] = curve
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", required=True, help="directory written by the trainer's compare dump")
    ap.add_argument("--ref", choices=["transformers", "numpy"], default="transformers")
    ap.add_argument("--precision", choices=["fp32", "bf16"], help="default: the dump's (fp32 on the CPU backend, bf16 on CUDA)")
    ap.add_argument("--grad-thr", type=float, default=0.05, help="bf16 gradient threshold as a fraction of each tensor's max |g|")
    ap.add_argument("--out", help="write results JSON here (default <dump>/results-<ref>-<precision>.json)")
    args = ap.parse_args()
    meta = json.load(open(os.path.join(args.dump, "curve.json")))
    args.precision = args.precision or meta["precision"]
    tokens = load_safetensors(os.path.join(args.dump, "batches.safetensors"))["tokens"]
    ours = load_safetensors(os.path.join(args.dump, "step0.safetensors"))
    bf16 = args.precision == "bf16"
    res = (run_numpy if args.ref == "numpy" else run_transformers)(args, meta, tokens, ours)
    res.update({"ref": args.ref, "precision": args.precision, "model": meta["model"]["name"], "ours_backend": meta["backend"], "ours_device": meta["device"]})

    checks = []
    logit_tol = 0.05 if bf16 else 1e-4
    checks.append(("logits (max |d| / max |ref|)", res["logits_rel_max"], logit_tol))
    loss_d = abs(res["loss_ours"] - res["loss_ref"])
    checks.append(("loss |d|" if bf16 else "loss |d| / loss", loss_d if bf16 else loss_d / abs(res["loss_ref"]), 0.05 if bf16 else 1e-4))
    if "grads" in res:
        if bf16:
            worst = max(res["grads"], key=lambda g: g["outside"])
            checks.append((f"grads: share outside thr+0.079|b| (worst {worst['name']})", worst["outside"], 1e-3))
        else:
            worst = max(res["grads"], key=lambda g: g["rel_max"])
            checks.append((f"grads max |d| / max |ref| (worst {worst['name']})", worst["rel_max"], 1e-4))
    if "curve" in res:
        d = [abs(c["loss_ours"] - c["loss_ref"]) for c in res["curve"]]
        i = int(np.argmax(d))
        checks.append((f"loss curve max |d| over {len(d)} steps (step {res['curve'][i]['step']})", max(d), 0.02 if bf16 else 1e-3))
    ok = True
    print(f"\n{res['model']} | ours: {res['ours_backend']} ({res['ours_device']}) | ref: {args.ref} {res.get('device', '')} | precision {args.precision}")
    print(f"{'check':<70} {'value':>12} {'tolerance':>10}  result")
    for name, value, tol in checks:
        passed = bool(value <= tol)
        ok &= passed
        print(f"{name:<70} {value:>12.3e} {tol:>10.1e}  {'PASS' if passed else 'FAIL'}")
    if "curve" in res:
        print("step  loss(ours)  loss(ref)   |d|")
        for c in res["curve"]:
            if c["step"] % 10 == 0 or c["step"] == res["curve"][-1]["step"]:
                print(f"{c['step']:>4}  {c['loss_ours']:10.5f}  {c['loss_ref']:10.5f}  {abs(c['loss_ours'] - c['loss_ref']):.2e}")
        print(f"seconds/step: ours {res['ours_seconds_per_step']:.3f}, transformers {res['ref_seconds_per_step']:.3f}")
    res["checks"] = [{"name": n, "value": v, "tolerance": t, "pass": bool(v <= t)} for n, v, t in checks]
    res["pass"] = ok
    out = args.out or os.path.join(args.dump, f"results-{args.ref}-{args.precision}.json")
    json.dump(res, open(out, "w"), indent=2)
    print(f"{'ALL PASS' if ok else 'FAILED'}; results in {out}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
