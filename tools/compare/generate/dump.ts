/**
 * Node side of the generation comparison (bundled into .gpu/generate-dump.mjs by prepare.sh).
 *
 *   node .gpu/generate-dump.mjs --out DIR [--model tinyllama-1.1b] [--checkpoint DIR]
 *     [--device cuda] [--dtype f32|bf16] [--prompts 8] [--prompt-len 64] [--new-tokens 64]
 *     [--full-check 2] [--speed] [--speed-prompt-len 128] [--speed-new-tokens 128]
 *
 * Writes into DIR:
 *   init/          the weights as a Hugging Face checkpoint (reference init from a fixed seed,
 *                  unless --checkpoint names real weights, which are then used in place)
 *   prompts.json   the prompts as token ids (BOS + seeded random ids)
 *   ours.json      greedy tokens with the KV cache (all prompts decoded together, batch =
 *                  --prompts); for the first --full-check prompts also the greedy tokens by full
 *                  recomputation (LlamaModel.logits over the whole sequence each step) and the
 *                  largest logit difference between the two paths
 *   speed.json     (--speed) decode tokens/s at batch 1 and 32: prefill seconds, decode seconds
 *                  (first token to last), new tokens
 * compare.py reads them and runs transformers on the same weights.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeHfModel } from "../../../packages/trainer/src/checkpoint/hf.ts";
import { generate, generateEvents } from "../../../packages/trainer/src/generate/generate.ts";
import { KvDecoder } from "../../../packages/trainer/src/generate/kv-decoder.ts";
import { argmax } from "../../../packages/trainer/src/generate/sampling.ts";
import { modelConfig, parameterSpecs } from "../../../packages/trainer/src/model/config.ts";
import { loadKernels } from "../../../packages/trainer/src/model/kernels.ts";
import { LlamaModel } from "../../../packages/trainer/src/model/llama.ts";
import { Rng } from "../../../packages/trainer/src/model/rng.ts";

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    model: { type: "string", default: "tinyllama-1.1b" },
    checkpoint: { type: "string" },
    device: { type: "string", default: "cuda" },
    dtype: { type: "string", default: "f32" },
    prompts: { type: "string", default: "8" },
    "prompt-len": { type: "string", default: "64" },
    "new-tokens": { type: "string", default: "64" },
    "full-check": { type: "string", default: "2" },
    speed: { type: "boolean", default: false },
    "speed-prompt-len": { type: "string", default: "128" },
    "speed-new-tokens": { type: "string", default: "128" },
    seed: { type: "string", default: "1234" },
  },
});
if (!values.out) throw new Error("--out DIR is required");
const out = values.out;
mkdirSync(out, { recursive: true });
const int = (k: keyof typeof values) => Number(values[k] as string);
const dtype = values.dtype as "f32" | "bf16";
const device = values.device as "cpu" | "cuda" | "auto";
const log = (s: string) => console.error(`[generate-dump] ${s}`);

let model: LlamaModel;
let weightsDir: string;
if (values.checkpoint) {
  model = await LlamaModel.load(values.checkpoint, { device, computeDtype: dtype });
  weightsDir = values.checkpoint;
} else {
  const cfg = modelConfig(values.model as string);
  const backend = await loadKernels(device);
  model = new LlamaModel(backend, cfg, { computeDtype: dtype });
  const rng = new Rng(int("seed"));
  const weights = new Map<string, Float32Array>();
  for (const s of parameterSpecs(cfg)) {
    const data = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    if (s.initOnes) data.fill(1);
    else rng.fillNormal(data, s.initStd);
    weights.set(s.name, data);
    model.setParam(s.name, data);
  }
  weightsDir = join(out, "init");
  mkdirSync(weightsDir, { recursive: true });
  writeHfModel(weightsDir, cfg, (n) => weights.get(n)!);
  weights.clear();
}
const V = model.config.vocabSize;
log(
  `${model.config.name} on ${model.backend.name} (${model.backend.device.name}), ${model.paramDtype}`,
);

// Prompts: BOS then seeded random ids (no EOS among them).
const rng = new Rng(int("seed") + 1);
const randomPrompt = (len: number) => [
  1,
  ...Array.from({ length: len - 1 }, () => 3 + (rng.nextU32() % (V - 3))),
];
const prompts = Array.from({ length: int("prompts") }, () => randomPrompt(int("prompt-len")));
writeFileSync(join(out, "prompts.json"), JSON.stringify({ weights: weightsDir, dtype, prompts }));

const newTokens = int("new-tokens");
const t0 = performance.now();
const kv = generate(model, prompts, {
  maxNewTokens: newTokens,
  eosTokenId: null,
  batchSize: prompts.length,
});
log(
  `KV-cache greedy: ${prompts.length} x ${newTokens} tokens in ${((performance.now() - t0) / 1000).toFixed(2)} s`,
);

// Full recomputation: the whole sequence through LlamaModel.logits each step, next token by argmax.
const full: number[][] = [];
let maxLogitDiff = 0;
const argmaxMismatches: { prompt: number; step: number; margin: number }[] = [];
for (let p = 0; p < Math.min(int("full-check"), prompts.length); p++) {
  const ids = [...prompts[p]!];
  const dec = new KvDecoder(model, { slots: 1, maxLen: ids.length + newTokens });
  let kvLogits = dec.step([{ slot: 0, tokens: ids, pos: 0 }]);
  const toks: number[] = [];
  for (let s = 0; s < newTokens; s++) {
    const all = model.logits(Int32Array.from(ids), 1, ids.length);
    const last = all.subarray((ids.length - 1) * V, ids.length * V);
    for (let j = 0; j < V; j++)
      maxLogitDiff = Math.max(maxLogitDiff, Math.abs(last[j]! - kvLogits[j]!));
    const next = argmax(last);
    // Same context on both paths (teacher-forced on the full path's tokens): a different argmax
    // is a real disagreement, recorded with the full path's margin there (a near-tie in bf16).
    const kvNext = argmax(kvLogits);
    if (kvNext !== next) {
      argmaxMismatches.push({ prompt: p, step: s, margin: last[next]! - last[kvNext]! });
    }
    toks.push(next);
    ids.push(next);
    kvLogits = dec.step([{ slot: 0, tokens: [next], pos: ids.length - 1 }]);
  }
  dec.dispose();
  model.releasePlans();
  full.push(toks);
}
writeFileSync(
  join(out, "ours.json"),
  JSON.stringify({
    kv_tokens: kv.map((g) => g.tokens),
    full_tokens: full,
    kv_vs_full_max_logit_diff: maxLogitDiff,
    kv_vs_full_argmax_mismatches: argmaxMismatches,
  }),
);
log(`KV vs full recomputation: max |logit diff| ${maxLogitDiff.toExponential(2)}`);

if (values.speed) {
  const pl = int("speed-prompt-len");
  const nt = int("speed-new-tokens");
  const rows = [];
  for (const batch of [1, 32]) {
    const ps = Array.from({ length: batch }, () => randomPrompt(pl));
    generate(model, ps.slice(0, 1), { maxNewTokens: 4, eosTokenId: null }); // warm-up
    model.backend.synchronize();
    const start = performance.now();
    let first = 0;
    let tokens = 0;
    for (const e of generateEvents(model, ps, {
      maxNewTokens: nt,
      eosTokenId: null,
      batchSize: batch,
      maxRows: batch * pl,
    })) {
      if (e.kind !== "token") continue;
      tokens++;
      if (first === 0 && tokens === batch) first = performance.now();
    }
    const end = performance.now();
    const decodeS = (end - first) / 1000;
    const row = {
      batch,
      prompt_len: pl,
      new_tokens: nt,
      prefill_s: (first - start) / 1000,
      decode_s: decodeS,
      decode_tokens_per_s: (batch * (nt - 1)) / decodeS,
      total_tokens_per_s: (batch * nt) / ((end - start) / 1000),
    };
    rows.push(row);
    log(JSON.stringify(row));
  }
  writeFileSync(
    join(out, "speed.json"),
    JSON.stringify({ device: model.backend.device.name, dtype, rows }, null, 2),
  );
}
model.dispose();
