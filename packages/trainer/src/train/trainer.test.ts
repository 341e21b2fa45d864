import { loadBackend } from "@tinyllama/kernels";
import { describe, expect, it } from "vitest";
import { parameterSpecs } from "../model/config.js";
import { LlamaModel } from "../model/llama.js";
import { TINYLLAMA_ADAMW } from "../optim/adamw.js";
import { microConfig } from "../test-util/tiny.js";
import { Trainer } from "./trainer.js";

describe("Trainer update", () => {
  it("is torch.optim.AdamW (0.9, 0.95, 1e-8, wd 0.1 on every tensor) on gradients clipped to norm 1", async () => {
    const k = await loadBackend("cpu");
    const cfg = microConfig();
    const trainer = new Trainer(
      new LlamaModel(k, cfg),
      { microBatch: 2, seqLen: 8, accumSteps: 1 },
      TINYLLAMA_ADAMW,
    );
    trainer.initWeights(7);
    for (const s of parameterSpecs(cfg)) {
      // Larger weights: gradient norm well above 1, so clipping is active.
      trainer.setWeight(
        s.name,
        trainer.readWeight(s.name).map((w) => (s.initOnes ? w : w * 20)),
      );
    }
    const fill = (ids: Int32Array, t: Int32Array) => {
      for (let i = 0; i < ids.length; i++) {
        ids[i] = (i * 5) % cfg.vocabSize;
        t[i] = (i * 11 + 3) % cfg.vocabSize;
      }
    };
    const names = parameterSpecs(cfg).map((s) => s.name);
    const p = new Map(names.map((n) => [n, Float64Array.from(trainer.readWeight(n))]));
    const m = new Map(names.map((n) => [n, new Float64Array(p.get(n)!.length)]));
    const v = new Map(names.map((n) => [n, new Float64Array(p.get(n)!.length)]));
    const { beta1, beta2, eps, weightDecay } = TINYLLAMA_ADAMW;
    for (let t = 1; t <= 3; t++) {
      const lr = 1e-3 * t;
      const { gradNorm } = trainer.computeGradients(fill);
      if (t === 1) expect(gradNorm).toBeGreaterThan(1.5);
      const clip = Math.min(1, 1 / (gradNorm + 1e-6));
      const grads = new Map(names.map((n) => [n, trainer.readGrad(n)]));
      trainer.applyUpdate(lr, gradNorm);
      for (const n of names) {
        const P = p.get(n)!;
        const M = m.get(n)!;
        const V = v.get(n)!;
        const G = grads.get(n)!;
        for (let i = 0; i < P.length; i++) {
          const g = G[i]! * clip;
          P[i] = P[i]! * (1 - lr * weightDecay);
          M[i] = beta1 * M[i]! + (1 - beta1) * g;
          V[i] = beta2 * V[i]! + (1 - beta2) * g * g;
          const mhat = M[i]! / (1 - beta1 ** t);
          const vhat = V[i]! / (1 - beta2 ** t);
          P[i] = P[i]! - (lr * mhat) / (Math.sqrt(vhat) + eps);
        }
        const got = trainer.readWeight(n);
        let worst = 0;
        for (let i = 0; i < P.length; i++) worst = Math.max(worst, Math.abs(got[i]! - P[i]!));
        expect(worst, `${n} after step ${t}`).toBeLessThan(
          2e-6 * Math.max(1, ...Array.from(P, Math.abs)),
        );
      }
    }
    expect(trainer.adamStep).toBe(3);
    trainer.dispose();
  });
});
