#!/usr/bin/env python3
"""Checks @tinyllama/eval against Hugging Face transformers on the GPU machine.

Inputs (from make-inputs.mjs): a checkpoint directory in Hugging Face Llama layout with a
tokenizer.model, and one or more `pnpm eval --log-samples` output directories (results.json +
samples_<task>.jsonl, which hold every request's texts, token ids, log-likelihood, is_greedy and
the per-doc acc/acc_norm).

For each output directory it checks, independently of the TypeScript code:
  1. tokens: every request re-encoded from its texts with the transformers tokenizer using the
     lm-evaluation-harness rules (trailing context whitespace moved to the continuation, whole
     vs context split, empty context -> one prefix token, BOS per the run's add_bos) gives the
     same context and continuation ids;
  2. log-likelihoods: transformers' model scores the same token windows (left-truncated to
     max_length + 1, full-vocabulary log-softmax in float32) within --atol + --rtol * |ll| of
     ours, and the is_greedy flags agree; in bfloat16 with --fp32-reference the verdict is how
     far each side is from float32 instead (two bf16 implementations differ by their rounding);
  3. accuracies: acc and acc_norm recomputed per doc the harness's way (numpy argmax of the
     log-likelihoods, and of log-likelihood / len(choice)) from transformers' numbers equal ours,
     doc by doc and in aggregate;
  4. speed: requests/s of a harness-style transformers scoring loop (sorted longest first,
     right-padded batches) for the same requests, to set beside ours (results.json).
Prints a table and writes compare-<name>.json; exits 1 if any check fails.

This is our own implementation of the harness's rules, written from its documented behaviour;
it does not import lm_eval (not installed on the GPU machines).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM


class SentencePieceTokenizer:
    """The slow Llama tokenizer's behaviour (legacy, no special tokens in the text), straight from
    the sentencepiece library: a reference independent of transformers' tokenizer classes."""

    def __init__(self, path):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_file=path)
        self.bos_token_id = self.sp.bos_id()
        self.eos_token_id = self.sp.eos_id()

    def encode(self, text, add_special_tokens=True):
        ids = self.sp.encode(text)
        return [self.bos_token_id] + ids if add_special_tokens else ids


def load_tokenizer(ckpt, kind):
    """"auto": what the harness loads (AutoTokenizer, the fast tokenizer; converted from
    tokenizer.model when the checkpoint has no tokenizer.json). "sp": sentencepiece itself."""
    if kind == "sp":
        tok = SentencePieceTokenizer(os.path.join(ckpt, "tokenizer.model"))
    else:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(ckpt)
    # Known ids of the Llama 2 tokenizer (llama-tokenizer-js's tests): refuse a broken load.
    got = tok.encode("Hello world!", add_special_tokens=True)
    if got != [1, 15043, 3186, 29991]:
        raise RuntimeError(f"{kind} tokenizer encodes 'Hello world!' as {got}, expected [1, 15043, 3186, 29991]")
    return tok


def encode_pair(tok, context, continuation, add_bos, empty_token):
    if context == "":
        cont = tok.encode(continuation, add_special_tokens=False)
        prefix = tok.bos_token_id if empty_token == "bos" else tok.eos_token_id
        if cont and cont[0] == prefix:
            return cont[:1], cont[1:]
        return [prefix], cont
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation, add_special_tokens=add_bos)
    ctx = tok.encode(context, add_special_tokens=add_bos)
    return ctx, whole[len(ctx):]


def load_run(run_dir):
    with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    samples = {}
    for task in results["results"]:
        with open(os.path.join(run_dir, f"samples_{task}.jsonl"), encoding="utf-8") as f:
            samples[task] = [json.loads(line) for line in f if line.strip()]
    return results, samples


@torch.no_grad()
def score_windows(model, windows, batch_size, device):
    """Harness-style loop: longest first, right-padded batches, log_softmax in float32."""
    order = sorted(range(len(windows)), key=lambda i: (-len(windows[i][0]), windows[i][0]))
    out = [None] * len(windows)
    if order:  # untimed warm-up batch (CUDA context, cuBLAS handles, allocator)
        warm = [windows[i][0][:-1] for i in order[:batch_size]]
        width = max(len(x) for x in warm)
        model(torch.tensor([x + [0] * (width - len(x)) for x in warm], device=device))
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        inps = [windows[i][0][:-1] for i in idx]
        width = max(len(x) for x in inps)
        batch = torch.zeros((len(idx), width), dtype=torch.long)
        for r, x in enumerate(inps):
            batch[r, :len(x)] = torch.tensor(x, dtype=torch.long)
        logits = model(batch.to(device)).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for r, i in enumerate(idx):
            tokens, first = windows[i]
            targets = torch.tensor(tokens[first:], dtype=torch.long, device=device)
            rows = logp[r, first - 1:len(tokens) - 1]
            lp = rows.gather(1, targets[:, None]).squeeze(1)
            greedy = bool((rows.argmax(dim=-1) == targets).all())
            out[i] = (float(lp.double().sum()), greedy)
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def harness_acc(lls, choices, gold):
    lls = np.array(lls, dtype=np.float64)
    lens = np.array([float(len(c)) for c in choices])
    acc = 1.0 if int(np.argmax(lls)) == gold else 0.0
    acc_norm = 1.0 if int(np.argmax(lls / lens)) == gold else 0.0
    return acc, acc_norm


def compare_run(run_dir, model, tok, args, device, ref_model=None):
    results, samples = load_run(run_dir)
    extra = results["tinyllama_ts"]
    add_bos, empty_token = extra["add_bos"], extra["empty_context_token"]
    max_length = args.max_length
    report = {"run": run_dir, "add_bos": add_bos, "empty_context_token": empty_token, "tasks": {}}
    token_mismatches, windows, ours = [], [], []
    keys = []
    for task, docs in samples.items():
        for doc in docs:
            for k, (ctx, cont) in enumerate(doc["arguments"]):
                c_ids, k_ids = encode_pair(tok, ctx, cont, add_bos, empty_token)
                mine_c, mine_k = doc["context_tokens"][k], doc["continuation_tokens"][k]
                if c_ids != mine_c or k_ids != mine_k:
                    token_mismatches.append({"task": task, "doc": doc["doc_id"], "choice": k,
                                             "context": ctx, "continuation": cont,
                                             "hf": [c_ids, k_ids], "ours": [mine_c, mine_k]})
                whole = mine_c + mine_k
                kept = whole[-(max_length + 1):]
                windows.append((kept, len(kept) - len(mine_k)))
                ours.append(doc["resps"][k])
                keys.append((task, doc["doc_id"], k))
    theirs, seconds = score_windows(model, windows, args.batch_size, device)
    reference = None
    if ref_model is not None:
        # Both bf16 implementations against float32: is ours as close to exact as transformers?
        exact, _ = score_windows(ref_model, windows, args.batch_size, device)
        exact_ll = np.array([e[0] for e in exact])
        ours_err = np.abs(np.array([o[0] for o in ours]) - exact_ll)
        hf_err = np.abs(np.array([t[0] for t in theirs]) - exact_ll)
        exact_by_key = dict(zip(keys, exact))

        def acc_agreement(scores_by_key):
            same = 0
            total = 0
            for task, docs in samples.items():
                for doc in docs:
                    n = len(doc["arguments"])
                    a = harness_acc([scores_by_key[(task, doc["doc_id"], k)] for k in range(n)], doc["choices"], doc["target"])
                    b = harness_acc([exact_by_key[(task, doc["doc_id"], k)][0] for k in range(n)], doc["choices"], doc["target"])
                    same += a == b
                    total += 1
            return same, total

        ours_by_key = {k: o[0] for k, o in zip(keys, ours)}
        hf_by_key0 = {k: t[0] for k, t in zip(keys, theirs)}
        reference = {
            "dtype": "float32",
            "ours_vs_fp32_max": float(ours_err.max()), "ours_vs_fp32_mean": float(ours_err.mean()),
            "hf_vs_fp32_max": float(hf_err.max()), "hf_vs_fp32_mean": float(hf_err.mean()),
            "ours_docs_same_acc_as_fp32": acc_agreement(ours_by_key),
            "hf_docs_same_acc_as_fp32": acc_agreement(hf_by_key0),
        }
    diffs = np.array([abs(a[0] - b[0]) for a, b in zip(ours, theirs)])
    # is_greedy is null when the run skipped it (--no-is-greedy)
    greedy_mismatch = sum(1 for a, b in zip(ours, theirs) if a[1] is not None and bool(a[1]) != b[1])
    hf_by_key = dict(zip(keys, theirs))
    acc_mismatch_docs = 0
    close_calls = 0  # docs whose top two choices (ours) are closer than the tolerance
    for task, docs in samples.items():
        hf_acc, hf_norm, our_acc, our_norm = [], [], [], []
        for doc in docs:
            lls = [hf_by_key[(task, doc["doc_id"], k)][0] for k in range(len(doc["arguments"]))]
            a, an = harness_acc(lls, doc["choices"], doc["target"])
            # Our own numbers recomputed the harness's way too: catches a metric bug in TS.
            oa, oan = harness_acc([r[0] for r in doc["resps"]], doc["choices"], doc["target"])
            if (a, an) != (doc["acc"], doc["acc_norm"]) or (oa, oan) != (doc["acc"], doc["acc_norm"]):
                acc_mismatch_docs += 1
            top = sorted((r[0] for r in doc["resps"]), reverse=True)
            if len(top) > 1 and top[0] - top[1] < args.atol:
                close_calls += 1
            hf_acc.append(a); hf_norm.append(an); our_acc.append(doc["acc"]); our_norm.append(doc["acc_norm"])
        entry = results["results"][task]
        report["tasks"][task] = {
            "docs": len(docs),
            "acc_ours": entry.get("acc,none"), "acc_hf": float(np.mean(hf_acc)),
            "acc_norm_ours": entry.get("acc_norm,none"),
            "acc_norm_hf": float(np.mean(hf_norm)) if "acc_norm,none" in entry else None,
        }
    ok_tokens = not token_mismatches
    # A request's log-likelihood sums its continuation's log-probabilities, so its rounding error
    # grows with its magnitude: the line is atol + rtol * |ll| (float32 sums of ~50 terms of
    # magnitude 10 differ by ~1e-6 relative between two correct GEMM orders).
    tols = args.atol + args.rtol * np.array([abs(t[0]) for t in theirs])
    over = diffs > tols
    ok_acc_pairwise = acc_mismatch_docs == 0 and all(
        t["acc_ours"] == t["acc_hf"] and (t["acc_norm_hf"] is None or t["acc_norm_ours"] == t["acc_norm_hf"])
        for t in report["tasks"].values())
    if reference is None:
        ok_ll, ok_acc = not over.any(), ok_acc_pairwise
        verdict_basis = "pairwise"
    else:
        # Two bf16 implementations differ from each other by about their own rounding (on a
        # random 1.1B model: 0.3 on average), so the pairwise line says little. The verdict is
        # against float32: ours may be at most 25% further from it than transformers' bf16 on
        # average, and score at most 1% more docs (or 2) differently from it.
        so, total = reference["ours_docs_same_acc_as_fp32"]
        sh, _ = reference["hf_docs_same_acc_as_fp32"]
        ok_ll = reference["ours_vs_fp32_mean"] <= 1.25 * reference["hf_vs_fp32_mean"] + args.atol
        ok_acc = so >= sh - max(2, total // 100)
        verdict_basis = "against float32"
    report.update({
        "requests": len(windows),
        "token_mismatches": len(token_mismatches),
        "token_mismatch_examples": token_mismatches[:10],
        "loglik_max_abs_diff": float(diffs.max()) if len(diffs) else 0.0,
        "loglik_mean_abs_diff": float(diffs.mean()) if len(diffs) else 0.0,
        "loglik_over_tolerance": int(over.sum()),
        "atol": args.atol,
        "rtol": args.rtol,
        "verdict_basis": verdict_basis,
        "acc_identical_to_hf": ok_acc_pairwise,
        "greedy_mismatches": greedy_mismatch,
        "acc_mismatch_docs": acc_mismatch_docs,
        "docs_with_top2_margin_below_atol": close_calls,
        "hf_seconds": seconds,
        "hf_requests_per_second": len(windows) / seconds if seconds > 0 else None,
        "ours_requests_per_second": extra.get("requests_per_second"),
        "ours_device": results["config"]["device"],
        "pass": ok_tokens and ok_ll and ok_acc and greedy_mismatch == 0,
        "reference": reference,
    })
    return report


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="pnpm eval --log-samples output dirs")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--atol", type=float, default=None, help="default 1e-4 (float32), 1e-2 (bfloat16)")
    p.add_argument("--rtol", type=float, default=None,
                   help="per-request line atol + rtol * |loglik|; default 1e-5 (float32), 1e-2 (bfloat16)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=None, help="default: the model's max_position_embeddings")
    p.add_argument("--tokenizer", default="auto", choices=["auto", "sp"])
    p.add_argument("--out", default=".")
    p.add_argument("--fp32-reference", action="store_true",
                   help="also score in float32 and report how far ours and transformers (both in --dtype) are from it")
    args = p.parse_args()
    if args.atol is None:
        args.atol = 1e-4 if args.dtype == "float32" else 1e-2
    if args.rtol is None:
        args.rtol = 1e-5 if args.dtype == "float32" else 1e-2
    dtype = torch.float32 if args.dtype == "float32" else torch.bfloat16
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=dtype).to(args.device).eval()
    if args.max_length is None:
        args.max_length = model.config.max_position_embeddings
    tok = load_tokenizer(args.checkpoint, args.tokenizer)
    print(f"transformers model {args.checkpoint} dtype={args.dtype} device={args.device} "
          f"tokenizer={type(tok).__name__} max_length={args.max_length}")
    ref_model = None
    if args.fp32_reference and dtype != torch.float32:
        ref_model = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=torch.float32).to(args.device).eval()
    all_pass = True
    for run in args.runs:
        r = compare_run(run, model, tok, args, args.device, ref_model)
        name = os.path.basename(os.path.normpath(run))
        with open(os.path.join(args.out, f"compare-{name}.json"), "w", encoding="utf-8") as f:
            json.dump(r, f, indent=2, ensure_ascii=False)
        print(f"\n== {name}: add_bos={r['add_bos']} empty_context={r['empty_context_token']} "
              f"requests={r['requests']} -> {'PASS' if r['pass'] else 'FAIL'} ({r['verdict_basis']})")
        print(f"token mismatches {r['token_mismatches']}; loglik |diff| max {r['loglik_max_abs_diff']:.3e} "
              f"mean {r['loglik_mean_abs_diff']:.3e} (over {r['atol']:g} + {r['rtol']:g} |ll|: {r['loglik_over_tolerance']}); "
              f"greedy mismatches {r['greedy_mismatches']}; docs with acc mismatch {r['acc_mismatch_docs']} "
              f"(docs whose top-2 margin < atol: {r['docs_with_top2_margin_below_atol']})")
        print(f"{'task':<16}{'docs':>5}{'acc ours':>10}{'acc hf':>9}{'norm ours':>11}{'norm hf':>9}")
        for task, t in r["tasks"].items():
            fmt = lambda v: "-" if v is None else f"{v:.4f}"
            print(f"{task:<16}{t['docs']:>5}{fmt(t['acc_ours']):>10}{fmt(t['acc_hf']):>9}"
                  f"{fmt(t['acc_norm_ours']):>11}{fmt(t['acc_norm_hf']):>9}")
        rps_hf, rps_ours = r["hf_requests_per_second"], r["ours_requests_per_second"]
        print(f"speed: transformers loop {rps_hf:.1f} req/s on {args.device}; ours "
              f"{rps_ours:.1f} req/s on {r['ours_device']} (only comparable on the same device)")
        ref = r["reference"]
        if ref:
            so, to = ref["ours_docs_same_acc_as_fp32"]
            sh, th = ref["hf_docs_same_acc_as_fp32"]
            print(f"against float32: ours |diff| max {ref['ours_vs_fp32_max']:.3e} mean {ref['ours_vs_fp32_mean']:.3e}, "
                  f"docs scored as in fp32 {so}/{to}; transformers {args.dtype} |diff| max {ref['hf_vs_fp32_max']:.3e} "
                  f"mean {ref['hf_vs_fp32_mean']:.3e}, docs scored as in fp32 {sh}/{th}")
        for m in r["token_mismatch_examples"][:3]:
            print("  token mismatch:", json.dumps(m, ensure_ascii=False)[:400])
        all_pass = all_pass and r["pass"]
    sys.exit(0 if all_pass else 1)


if __name__ == "__main__":
    main()
