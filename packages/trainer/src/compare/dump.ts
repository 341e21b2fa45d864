/**
 * Node side of the PyTorch comparison (tools/compare/trainer/): builds a model with the
 * reference initialisation, writes it as a Hugging Face checkpoint, then records on the same
 * deterministic batches what transformers' LlamaForCausalLM must reproduce:
 *
 *   <out>/init/                  config.json + model.safetensors (fp32 initial weights)
 *   <out>/batches.safetensors    "tokens" I32 [steps, accum * microBatch, seqLen + 1]
 *   <out>/step0.safetensors      "logits" F32 [rows, vocab] (first --logit-rows rows of batch 0),
 *                                "loss" F32 [1], "grad.<param>" F32 for every parameter
 *   <out>/curve.json             per step: loss, lr, grad norm (AdamW, clipping, schedule as in training)
 *
 * Imports nothing from @tinyllama/data, so it bundles into one file for the GPU machine.
 * Usage: node dump.js --out dir [--model tinyllama-1.1b] [--device cuda] [--micro-batch 2]
 *        [--seq-len 512] [--accum 1] [--steps 50] [--seed 3407] [--logit-rows 256]
 *        [--compute-dtype f32|bf16]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeHfModel } from "../checkpoint/hf.js";
import { writeSafetensors } from "../checkpoint/safetensors.js";
import { type FlagSpec, parseFlags } from "../cli/args.js";
import { MODEL_CONFIGS, modelConfig, parameterSpecs } from "../model/config.js";
import { type DeviceName, loadKernels } from "../model/kernels.js";
import { LlamaModel } from "../model/llama.js";
import { Rng } from "../model/rng.js";
import { TINYLLAMA_ADAMW } from "../optim/adamw.js";
import { type CosineSchedule, learningRate, validateSchedule } from "../optim/schedule.js";
import { Trainer } from "../train/trainer.js";

const FLAGS: FlagSpec[] = [
  { name: "out", type: "string", help: "output directory" },
  { name: "model", type: "string", choices: Object.keys(MODEL_CONFIGS), help: "model config" },
  { name: "device", type: "string", choices: ["cpu", "cuda", "auto"], help: "backend" },
  { name: "micro-batch", type: "int", min: 1, help: "sequences per micro-batch" },
  { name: "seq-len", type: "int", min: 2, help: "tokens per sequence" },
  { name: "accum", type: "int", min: 1, help: "micro-batches per optimizer step" },
  { name: "steps", type: "int", min: 1, help: "optimizer steps of the loss curve" },
  { name: "seed", type: "int", min: 0, help: "init and data seed" },
  { name: "logit-rows", type: "int", min: 1, help: "rows of batch-0 logits to save" },
  { name: "lr-max", type: "number", min: 0, help: "peak lr" },
  { name: "lr-min", type: "number", min: 0, help: "final lr" },
  { name: "warmup-steps", type: "int", min: 0, help: "warmup in optimizer steps" },
  {
    name: "decay-steps",
    type: "int",
    min: 1,
    help: "optimizer steps to the end of the cosine (default --steps; the recipe's 2000-step warmup needs more)",
  },
  {
    name: "compute-dtype",
    type: "string",
    choices: ["f32", "bf16"],
    help: "default f32 on CPU, bf16 on CUDA",
  },
];

/** A learnable token stream: a random bigram chain over 2000 real-vocabulary ids. */
function tokenStream(seed: number, vocab: number): () => number {
  const rng = new Rng(seed);
  const states = Math.min(2000, vocab - 3);
  const succ = Array.from({ length: states }, () => [0, 1, 2].map(() => rng.nextU32() % states));
  let s = 0;
  return () => {
    const u = rng.uniform();
    s = succ[s]![u < 0.6 ? 0 : u < 0.9 ? 1 : 2]!;
    return 3 + s;
  };
}

export async function dump(argv: string[], log: (l: string) => void = console.log): Promise<void> {
  const f = parseFlags(argv, FLAGS);
  if (!f.out) throw new Error("--out <dir> is required");
  const out = resolve(f.out as string);
  const cfg = modelConfig((f.model as string | undefined) ?? "tinyllama-1.1b");
  const B = (f["micro-batch"] as number | undefined) ?? 2;
  const T = (f["seq-len"] as number | undefined) ?? 512;
  const accum = (f.accum as number | undefined) ?? 1;
  const steps = (f.steps as number | undefined) ?? 50;
  const seed = (f.seed as number | undefined) ?? 3407;
  const logitRows = Math.min((f["logit-rows"] as number | undefined) ?? 256, B * T);
  const backend = await loadKernels(((f.device as string | undefined) ?? "auto") as DeviceName);
  const rowsPerStep = accum * B;
  const batchTokens = rowsPerStep * T;
  const warmupSteps =
    (f["warmup-steps"] as number | undefined) ?? Math.min(10, Math.floor(steps / 5));
  const schedule: CosineSchedule = {
    maxLr: (f["lr-max"] as number | undefined) ?? 4e-4,
    minLr: (f["lr-min"] as number | undefined) ?? 4e-5,
    warmupTokens: warmupSteps * batchTokens,
    decayTokens: ((f["decay-steps"] as number | undefined) ?? steps) * batchTokens,
  };
  validateSchedule(schedule);
  mkdirSync(join(out, "init"), { recursive: true });
  log(
    `compare dump: ${cfg.name} on ${backend.name} (${backend.device.name}), ${steps} steps of ${accum} x ${B} x ${T}`,
  );

  // Batches: steps x rows x (T + 1) tokens.
  const next = tokenStream(seed, cfg.vocabSize);
  const tokens = new Int32Array(steps * rowsPerStep * (T + 1));
  for (let i = 0; i < tokens.length; i++) tokens[i] = next();
  writeSafetensors(join(out, "batches.safetensors"), [
    { name: "tokens", dtype: "I32", shape: [steps, rowsPerStep, T + 1], data: tokens },
  ]);
  const fillFrom = (step: number) => {
    let micro = 0;
    return (ids: Int32Array, targets: Int32Array) => {
      for (let b = 0; b < B; b++) {
        const row = (step * rowsPerStep + micro * B + b) * (T + 1);
        for (let t = 0; t < T; t++) {
          ids[b * T + t] = tokens[row + t]!;
          targets[b * T + t] = tokens[row + t + 1]!;
        }
      }
      micro++;
    };
  };

  const computeDtype = f["compute-dtype"] as "f32" | "bf16" | undefined;
  const model = new LlamaModel(backend, cfg, computeDtype ? { computeDtype } : {});
  const trainer = new Trainer(
    model,
    { microBatch: B, seqLen: T, accumSteps: accum },
    TINYLLAMA_ADAMW,
  );
  try {
    trainer.initWeights(seed);
    writeHfModel(join(out, "init"), cfg, (n) => trainer.readWeight(n));

    // Step 0: logits of the first micro-batch, then loss and every gradient of the global batch.
    const ids = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    fillFrom(0)(ids, targets);
    model.loadIds(trainer.plan.ids, ids, B * T);
    model.forward(trainer.plan, false);
    const V = cfg.vocabSize;
    const logits = trainer.plan.logits.toFloat32().slice(0, logitRows * V);
    const g0 = trainer.computeGradients(fillFrom(0));
    writeSafetensors(join(out, "step0.safetensors"), [
      { name: "logits", dtype: "F32", shape: [logitRows, V], data: logits },
      { name: "loss", dtype: "F32", shape: [1], data: Float32Array.of(g0.loss) },
      ...parameterSpecs(cfg).map((s) => ({
        name: `grad.${s.name}`,
        dtype: "F32" as const,
        shape: s.shape,
        data: () => trainer.readGrad(s.name),
      })),
    ]);
    log(`step 0: loss ${g0.loss.toFixed(6)}, grad norm ${g0.gradNorm.toFixed(6)}`);

    // The loss curve: step i trains on batch i with the schedule's lr.
    const curve: { step: number; loss: number; lr: number; gradNorm: number; seconds: number }[] =
      [];
    for (let step = 0; step < steps; step++) {
      const lr = learningRate(schedule, step * batchTokens);
      const t0 = performance.now();
      const r = trainer.step(lr, fillFrom(step));
      backend.synchronize();
      const seconds = (performance.now() - t0) / 1000;
      curve.push({ step, loss: r.loss, lr, gradNorm: r.gradNorm, seconds });
      if (step % 10 === 0 || step === steps - 1) {
        log(
          `step ${step}: loss ${r.loss.toFixed(4)} lr ${lr.toExponential(3)} grad norm ${r.gradNorm.toFixed(4)} (${seconds.toFixed(3)} s)`,
        );
      }
    }
    writeFileSync(
      join(out, "curve.json"),
      `${JSON.stringify(
        {
          model: cfg,
          backend: backend.name,
          device: backend.device.name,
          precision: model.paramDtype === "f32" ? "fp32" : "bf16",
          microBatch: B,
          seqLen: T,
          accum,
          seed,
          adamw: TINYLLAMA_ADAMW,
          schedule,
          curve,
        },
        null,
        2,
      )}\n`,
    );
    log(`wrote ${out}`);
  } finally {
    trainer.dispose();
  }
}

const invoked = process.argv[1] ?? "";
if (/dump\.(js|mjs|ts)$/.test(invoked) || process.env.TINYLLAMA_COMPARE_DUMP === "1") {
  dump(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`compare dump: ${(e as Error).message}`);
    process.exit(1);
  });
}
