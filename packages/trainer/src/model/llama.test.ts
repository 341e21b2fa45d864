import { loadBackend, planArena } from "@tinyllama/kernels";
import { describe, expect, it } from "vitest";
import { TINYLLAMA_ADAMW } from "../optim/adamw.js";
import { microConfig } from "../test-util/tiny.js";
import { Trainer } from "../train/trainer.js";
import { modelConfig, parameterSpecs } from "./config.js";
import { INFERENCE_PLANS_KEPT, LlamaModel } from "./llama.js";
import { activationSpecs } from "./plan.js";

function batch(B: number, T: number, V: number, seed: number) {
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  let x = seed;
  for (let i = 0; i < B * T; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    ids[i] = x % V;
    targets[i] = (ids[i]! * 7 + 3) % V; // a learnable mapping
  }
  return { ids, targets };
}

describe("LlamaModel on the CPU backend", () => {
  it("matches finite differences for every parameter's gradient", async () => {
    const k = await loadBackend("cpu");
    const cfg = microConfig();
    const model = new LlamaModel(k, cfg);
    const B = 2;
    const T = 8;
    const trainer = new Trainer(
      model,
      { microBatch: B, seqLen: T, accumSteps: 1 },
      TINYLLAMA_ADAMW,
    );
    trainer.initWeights(1);
    // Larger weights than the reference init so gradients are well above f32 noise.
    for (const s of parameterSpecs(cfg)) {
      const w = trainer.readWeight(s.name);
      for (let i = 0; i < w.length; i++) w[i] = s.initOnes ? 1 + 0.1 * Math.sin(i) : w[i]! * 10;
      trainer.setWeight(s.name, w);
    }
    const { ids, targets } = batch(B, T, cfg.vocabSize, 5);
    const plan = trainer.plan;
    const lossOf = () => {
      model.loadIds(plan.ids, ids, B * T);
      model.loadIds(plan.targets, targets, B * T);
      model.forward(plan, true, false);
      return k.sum(plan.losses) / (B * T);
    };
    // Analytic gradients (forward + backward, no update).
    trainer.computeGradients((i, t) => {
      i.set(ids);
      t.set(targets);
    });
    const eps = 1e-2;
    for (const s of parameterSpecs(cfg)) {
      const g = trainer.readGrad(s.name);
      const w = model.getParam(s.name);
      // Check the 3 largest-gradient coordinates of each tensor.
      const idx = [...g.keys()].sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!)).slice(0, 3);
      for (const i of idx) {
        const orig = w[i]!;
        w[i] = orig + eps;
        model.setParam(s.name, w);
        const lp = lossOf();
        w[i] = orig - eps;
        model.setParam(s.name, w);
        const lm = lossOf();
        w[i] = orig;
        model.setParam(s.name, w);
        const fd = (lp - lm) / (2 * eps);
        expect(Math.abs(fd - g[i]!), `${s.name}[${i}] fd ${fd} analytic ${g[i]}`).toBeLessThan(
          1e-3 + 0.015 * Math.abs(fd),
        );
      }
    }
    trainer.dispose();
  });

  it("zeroes gradients every step, and accumulation equals one larger micro-batch", async () => {
    const k = await loadBackend("cpu");
    const cfg = microConfig();
    const { ids, targets } = batch(4, 8, cfg.vocabSize, 11);
    const liveBefore = k.stats().liveTensors;
    const grads = (microBatch: number, accumSteps: number, times: number) => {
      const trainer = new Trainer(
        new LlamaModel(k, cfg),
        { microBatch, seqLen: 8, accumSteps },
        TINYLLAMA_ADAMW,
      );
      trainer.initWeights(3);
      let r = { loss: 0, gradNorm: 0 };
      for (let i = 0; i < times; i++) {
        let micro = 0;
        r = trainer.computeGradients((ii, tt) => {
          ii.set(ids.subarray(micro * microBatch * 8, (micro + 1) * microBatch * 8));
          tt.set(targets.subarray(micro * microBatch * 8, (micro + 1) * microBatch * 8));
          micro++;
        });
      }
      const g = parameterSpecs(cfg).map((s) => trainer.readGrad(s.name));
      trainer.dispose();
      return { ...r, g };
    };
    const once = grads(4, 1, 1);
    const twice = grads(4, 1, 2); // second call must not add to the first
    const accumulated = grads(2, 2, 1);
    expect(twice.loss).toBe(once.loss);
    expect(twice.gradNorm).toBe(once.gradNorm);
    expect(accumulated.loss).toBeCloseTo(once.loss, 5);
    expect(accumulated.gradNorm).toBeCloseTo(once.gradNorm, 5);
    for (let i = 0; i < once.g.length; i++) {
      for (let j = 0; j < once.g[i]!.length; j += 7) {
        expect(accumulated.g[i]![j]!).toBeCloseTo(once.g[i]![j]!, 5);
      }
    }
    // Every trainer was disposed: no tensor handle (weights, arenas, plan views) is left alive.
    expect(k.stats().liveTensors).toBe(liveBefore);
  });

  it("bf16 mixed precision (bf16 weights/activations, fp32 master) tracks fp32 within 0.02 per step", async () => {
    const k = await loadBackend("cpu");
    const cfg = { ...modelConfig("tinyllama-test") };
    const fill = (ids: Int32Array, t: Int32Array) => {
      for (let i = 0; i < ids.length; i++) {
        ids[i] = 1000 + ((i * 7) % 50);
        t[i] = 1000 + ((((i * 7) % 50) + 1) % 50);
      }
    };
    const curve = (computeDtype: "f32" | "bf16") => {
      const model = new LlamaModel(k, cfg, { computeDtype });
      const tr = new Trainer(model, { microBatch: 2, seqLen: 32, accumSteps: 2 }, TINYLLAMA_ADAMW);
      tr.initWeights(1);
      const losses = Array.from({ length: 10 }, () => tr.step(3e-3, fill).loss);
      // Checkpoints store the fp32 master weights, not the bf16 compute copy.
      const master = tr.readWeight("lm_head.weight");
      const compute = model.getParam("lm_head.weight");
      tr.dispose();
      return { losses, master, compute };
    };
    const f32 = curve("f32");
    const bf16 = curve("bf16");
    expect(f32.losses[9]!).toBeLessThan(f32.losses[0]! - 2);
    for (let i = 0; i < 10; i++)
      expect(Math.abs(bf16.losses[i]! - f32.losses[i]!)).toBeLessThan(0.02);
    const bits = new Uint32Array(bf16.compute.buffer);
    expect(bits.every((b) => (b & 0xffff) === 0)).toBe(true); // compute copy is bf16
    expect(new Uint32Array(bf16.master.buffer).some((b) => (b & 0xffff) !== 0)).toBe(true); // master is fp32
  });

  it("recomputing layer activations in backward gives the same bits in less memory", async () => {
    const k = await loadBackend("cpu");
    // three layers: backward rebuilds layers 0 and 1 (the shared set holds layer 2's from the
    // forward pass), so a wrong rebuild shows in their gradients
    const cfg = { ...modelConfig("tinyllama-test"), numLayers: 3 };
    const fill = (ids: Int32Array, t: Int32Array) => {
      for (let i = 0; i < ids.length; i++) {
        ids[i] = 1000 + ((i * 13) % 97);
        t[i] = 1000 + ((((i * 13) % 97) + 5) % 97);
      }
    };
    for (const computeDtype of ["f32", "bf16"] as const) {
      const run = (recompute: boolean) => {
        const model = new LlamaModel(k, cfg, { computeDtype });
        const tr = new Trainer(
          model,
          { microBatch: 2, seqLen: 32, accumSteps: 2, recompute },
          TINYLLAMA_ADAMW,
        );
        tr.initWeights(7);
        const losses = Array.from({ length: 3 }, () => tr.step(3e-3, fill).loss);
        tr.computeGradients(fill);
        const grads = parameterSpecs(cfg).map((s) => tr.readGrad(s.name));
        const bytes = tr.plan.arena.bytes;
        tr.dispose();
        return { losses, grads, bytes };
      };
      const kept = run(false);
      const rebuilt = run(true);
      // Same kernels on the same inputs: every loss and gradient bit is equal.
      expect(rebuilt.losses, computeDtype).toEqual(kept.losses);
      for (let i = 0; i < kept.grads.length; i++) {
        expect(
          Buffer.from(rebuilt.grads[i]!.buffer).equals(Buffer.from(kept.grads[i]!.buffer)),
          computeDtype,
        ).toBe(true);
      }
      expect(rebuilt.bytes).toBeLessThan(kept.bytes);
    }
    // The plan: one shared set of layer activations instead of one per layer.
    const big = modelConfig("tinyllama-1.1b");
    const gib = (recompute: boolean) =>
      planArena(activationSpecs(big, 16, 2048, true, "bf16", recompute)).bytes / 2 ** 30;
    expect(gib(false)).toBeGreaterThan(40);
    expect(gib(true)).toBeLessThan(gib(false) / 2);
    const model = new LlamaModel(k, cfg);
    expect(() => model.plan(1, 8, false, { recompute: true })).toThrow(/training plans only/);
    model.dispose();
  });

  it("keeps the training plan and the INFERENCE_PLANS_KEPT most recently used inference plans", async () => {
    const k = await loadBackend("cpu");
    const model = new LlamaModel(k, microConfig());
    const train = model.plan(2, 8, true);
    const first = model.plan(1, 8, false);
    const second = model.plan(2, 8, false);
    expect(INFERENCE_PLANS_KEPT).toBe(2);
    expect(model.plan(1, 8, false)).toBe(first); // cached, and now the most recent
    const third = model.plan(3, 8, false); // evicts the least recently used: `second`
    expect(second.logits.disposed).toBe(true);
    expect(first.logits.disposed).toBe(false);
    expect(third.logits.disposed).toBe(false);
    expect(train.logits.disposed).toBe(false);
    expect(model.plan(2, 8, true)).toBe(train);
    const again = model.plan(2, 8, false); // a fresh plan for an evicted shape, and it works
    expect(again).not.toBe(second);
    expect(first.logits.disposed).toBe(true);
    new Trainer(model, { microBatch: 2, seqLen: 8, accumSteps: 1 }, TINYLLAMA_ADAMW).initWeights(5);
    const ids = Int32Array.from({ length: 16 }, (_, i) => 3 + i);
    const V = microConfig().vocabSize;
    const logits = model.logits(ids, 2, 8);
    expect(logits).toHaveLength(16 * V);
    // greedyTokens: each row's first maximum, computed by the backend from the same logits
    const rowArgmax = Array.from({ length: 16 }, (_, r) => {
      const row = logits.subarray(r * V, (r + 1) * V);
      return row.indexOf(Math.max(...row));
    });
    expect(new Set(rowArgmax).size).toBeGreaterThan(1);
    expect(Array.from(model.greedyTokens(again))).toEqual(rowArgmax);
    expect(() => model.greedyTokens(train)).toThrow(/needs an inference plan/);
    model.dispose();
    expect(third.logits.disposed && again.logits.disposed && train.logits.disposed).toBe(true);
  });

  it("scoreSequences refuses sequences past the context, bad batch sizes and use after dispose", async () => {
    const k = await loadBackend("cpu");
    const cfg = microConfig({ maxSeqLen: 8 });
    const model = new LlamaModel(k, cfg);
    new Trainer(model, { microBatch: 1, seqLen: 8, accumSteps: 1 }, TINYLLAMA_ADAMW).initWeights(3);
    const seq = (n: number) => Array.from({ length: n }, (_, i) => 1 + i);
    // maxSeqLen + 1 tokens fill the context exactly; one more used to be scored silently,
    // its tail read from the next row's logits (or past the buffer: NaN).
    expect(model.scoreSequences([seq(9)])[0]!.logProbs).toHaveLength(8);
    expect(() => model.scoreSequences([seq(10), seq(3)], { batchSize: 2 })).toThrow(
      /sequence 0 has 10 tokens; the model's context is 8/,
    );
    for (const batchSize of [0, 1.5, -1, Number.NaN]) {
      expect(() => model.scoreSequences([seq(3), seq(3)], { batchSize })).toThrow(
        /batchSize must be a positive integer/,
      );
    }
    model.dispose();
    expect(() => model.getParam("lm_head.weight")).toThrow(/used after dispose/);
    expect(() => model.setParam("lm_head.weight", new Float32Array(1))).toThrow(
      /used after dispose/,
    );
  });
});
