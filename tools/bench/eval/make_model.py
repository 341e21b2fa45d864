#!/usr/bin/env python3
"""Writes a randomly initialised Llama in Hugging Face layout (config.json + model.safetensors)
with TinyLlama-1.1B's shape (or a smaller one) for the eval throughput benchmark.

usage: python3 make_model.py <outDir> <tokenizer.model> [--shape 1.1b|4m] [--dtype bfloat16|float32]
"""
import argparse
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4),
    "4m": dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2),
}

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("tokenizer")
p.add_argument("--shape", default="1.1b", choices=SHAPES)
p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
a = p.parse_args()
torch.manual_seed(3407)
config = LlamaConfig(vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5,
                     rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                     initializer_range=0.02, **SHAPES[a.shape])
with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
    model = LlamaForCausalLM(config)
# A sharper output layer than the default init (std 0.1 instead of 0.02), so that the choices of
# a question differ by whole nats rather than by bf16 noise and accuracies are a real check.
with torch.no_grad():
    model.lm_head.weight.mul_(5.0)
model = model.to(getattr(torch, a.dtype))
model.save_pretrained(a.out, safe_serialization=True)
shutil.copy(a.tokenizer, f"{a.out}/tokenizer.model")
print(f"wrote {a.shape} {a.dtype} Llama ({sum(t.numel() for t in model.parameters())/1e6:.1f}M params) to {a.out}")
