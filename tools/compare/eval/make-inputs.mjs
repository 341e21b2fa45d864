#!/usr/bin/env node
// Prepares the inputs of compare.py on this (CPU) machine:
//   1. a random Llama checkpoint in Hugging Face layout (config.json + model.safetensors, F32)
//      with the Llama 2 tokenizer.model beside it, so both sides load the same files;
//   2. `pnpm eval` on it with --log-samples for each harness preset, on the bundled fixtures
//      (or --data-dir), giving per-request texts, token ids, log-likelihoods and accuracies.
// Then carry the output directory to the GPU machine and run compare.py there.
//
// usage: node tools/compare/eval/make-inputs.mjs [outDir] [modelConfig] [extra pnpm-eval args...]
//   outDir default out/eval-compare, modelConfig default tinyllama-4m (2 layers, GQA 2:1).
// Needs the packages built (turbo build, or tsc -p tsconfig.build.json in trainer and eval).
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const [outArg, configName = "tinyllama-4m", ...evalArgs] = process.argv.slice(2);
const out = resolve(outArg ?? join(root, "out/eval-compare"));
const trainer = await import(join(root, "packages/trainer/dist/index.js"));

const config = trainer.MODEL_CONFIGS[configName];
if (!config) throw new Error(`unknown model config ${configName}`);
const ckpt = join(out, "checkpoint");
rmSync(out, { recursive: true, force: true });
mkdirSync(ckpt, { recursive: true });

// Deterministic pseudo-normal weights (sum of uniforms), scaled like the reference init so
// the distributions are sharp enough for choices to differ clearly.
let state = 3407;
const uniform = () => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return state / 4294967296;
};
const normal = () => uniform() + uniform() + uniform() + uniform() - 2; // var 1/3
const specs = trainer.parameterSpecs(config);
/** @typedef {{ name: string, shape: number[] }} ParamSpec */
trainer.writeHfModel(ckpt, config, (/** @type {string} */ name) => {
  const spec = /** @type {ParamSpec} */ (
    specs.find((/** @type {ParamSpec} */ s) => s.name === name)
  );
  const n = spec.shape.reduce((a, b) => a * b, 1);
  if (name.endsWith("norm.weight"))
    return Float32Array.from({ length: n }, () => 1 + 0.1 * normal());
  const std = 3 * config.initStd;
  return Float32Array.from({ length: n }, () => normal() * Math.sqrt(3) * std);
});
copyFileSync("/work/shared/fixtures/llama2-tokenizer.model", join(ckpt, "tokenizer.model"));

for (const preset of ["0.4.9.1", "0.4.9.2"]) {
  const args = [
    join(root, "packages/eval/dist/cli.js"),
    "--checkpoint",
    ckpt,
    "--device",
    "cpu",
    "--harness",
    preset,
    "--log-samples",
    "--output",
    join(out, `ours-${preset}`),
    ...evalArgs,
  ];
  console.error(`node ${args.join(" ")}`);
  execFileSync(process.execPath, args, { stdio: "inherit" });
}
console.error(`inputs ready in ${out}`);
