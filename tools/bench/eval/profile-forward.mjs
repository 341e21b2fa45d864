#!/usr/bin/env node
// Where a scoring forward spends its device time, op by op: the eval's own path
// (LlamaTokenScorer's fast path, as `pnpm eval` drives it) over synthetic windows, on a backend
// wrapped by @tinyllama/kernels' profiled(), which synchronizes around every op. Run it on a GPU
// machine to see why one dtype is slower than the reference (e.g. f32 against transformers).
//
//   node tools/bench/eval/profile-forward.mjs --checkpoint <dir> [--dtype f32|bf16]
//     [--device cuda] [--windows 64] [--length 256] [--batch-size 32]
// Needs pnpm build (tools/bench/eval/prepare.sh also bundles it into .gpu/ for the GPU machines).
import { parseArgs } from "node:util";
import { LlamaTokenScorer } from "@tinyllama/eval";
import { formatProfile, loadBackend, profiled } from "@tinyllama/kernels";
import { LlamaModel } from "@tinyllama/trainer";

const { values } = parseArgs({
  options: {
    checkpoint: { type: "string" },
    dtype: { type: "string", default: "f32" },
    device: { type: "string", default: "cuda" },
    windows: { type: "string", default: "64" },
    length: { type: "string", default: "256" },
    "batch-size": { type: "string", default: "32" },
  },
});
if (!values.checkpoint) throw new Error("--checkpoint <dir> is required");
if (values.dtype !== "f32" && values.dtype !== "bf16")
  throw new Error("--dtype must be f32 or bf16");
const device = /** @type {"cpu" | "cuda"} */ (values.device);
const n = Number(values.windows);
const batchSize = Number(values["batch-size"]);
const length = Number(values.length);

const prof = profiled(await loadBackend(device));
const model = await LlamaModel.load(values.checkpoint, {
  backend: prof.backend,
  computeDtype: values.dtype,
});
const scorer = new LlamaTokenScorer(model);
// Windows like a multiple-choice request's: a context, then a continuation to score and test
// for greedy (fixed seed, ids within the vocabulary).
let seed = 1;
const rand = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed;
};
const windows = Array.from({ length: n }, () => {
  const tokens = Int32Array.from({ length }, () => 3 + (rand() % (model.config.vocabSize - 3)));
  const from = length - 24;
  return {
    tokens,
    scoreFrom: from,
    greedyRanges: [/** @type {[number, number]} */ ([from, length])],
  };
});
// as `pnpm eval --batch-size` does: one scoreWindows call per batch
const scoreAll = async () => {
  for (let i = 0; i < windows.length; i += batchSize)
    await scorer.scoreWindows(windows.slice(i, i + batchSize));
};
await scoreAll(); // warm-up: activation plans, cuBLASLt heuristics
prof.start();
const t0 = performance.now();
await scoreAll();
const ms = performance.now() - t0;
const rows = prof.stop();
console.log(
  `${n} windows of ${length} tokens, ${values.dtype} on ${device}: ${ms.toFixed(1)} ms profiled (every op synchronized)`,
);
console.log(formatProfile(rows, ms));
model.dispose();
