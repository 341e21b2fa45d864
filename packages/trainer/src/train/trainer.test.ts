import { type Backend, loadBackend } from "@tinyllama/kernels";
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

  it("starts every step from fresh gradients without zeroing the whole arena", async () => {
    // The first micro-batch overwrites the Linear gradients and only the norms' and the
    // embedding's are zeroed: a second computeGradients on the same batch must give the same
    // bits as the first (nothing left over from it), with and without accumulation.
    const k = await loadBackend("cpu");
    const cfg = microConfig();
    const fill = (ids: Int32Array, t: Int32Array) => {
      for (let i = 0; i < ids.length; i++) {
        ids[i] = (i * 7 + 1) % cfg.vocabSize;
        t[i] = (i * 3 + 2) % cfg.vocabSize;
      }
    };
    for (const accumSteps of [1, 3]) {
      const trainer = new Trainer(
        new LlamaModel(k, cfg),
        { microBatch: 2, seqLen: 8, accumSteps },
        TINYLLAMA_ADAMW,
      );
      trainer.initWeights(5);
      const names = parameterSpecs(cfg).map((s) => s.name);
      const first = trainer.computeGradients(fill);
      const g1 = names.map((n) => trainer.readGrad(n));
      const second = trainer.computeGradients(fill);
      const g2 = names.map((n) => trainer.readGrad(n));
      expect(second).toEqual(first);
      g1.forEach((g, i) => {
        expect(
          Buffer.from(g2[i]!.buffer).equals(Buffer.from(g.buffer)),
          `${names[i]} (accum ${accumSteps})`,
        ).toBe(true);
      });
      trainer.dispose();
    }
  });

  it("updates the whole model in one AdamW call where the arenas line up, with the per-tensor bits", async () => {
    const k = await loadBackend("cpu");
    // Every tensor a multiple of 128 values: no alignment gaps in f32 or bf16 arenas.
    const cfg = microConfig({
      vocabSize: 128,
      hiddenSize: 128,
      intermediateSize: 256,
      numHeads: 4,
    });
    const fill = (ids: Int32Array, t: Int32Array) => {
      for (let i = 0; i < ids.length; i++) {
        ids[i] = (i * 5) % cfg.vocabSize;
        t[i] = (i * 11 + 3) % cfg.vocabSize;
      }
    };
    const run = (computeDtype: "f32" | "bf16", perTensor: boolean) => {
      if (perTensor) process.env.TINYLLAMA_WHOLE_MODEL_ADAMW = "off";
      try {
        const trainer = new Trainer(
          new LlamaModel(k, cfg, { computeDtype }),
          { microBatch: 2, seqLen: 8, accumSteps: 1 },
          TINYLLAMA_ADAMW,
        );
        expect(trainer.wholeModelUpdate === null).toBe(perTensor);
        trainer.initWeights(11);
        for (let t = 1; t <= 3; t++) trainer.step(1e-2, fill);
        const state = parameterSpecs(cfg).flatMap((s) => [
          trainer.readWeight(s.name),
          trainer.readMoment("m", s.name),
          trainer.readMoment("v", s.name),
        ]);
        trainer.dispose();
        return state;
      } finally {
        delete process.env.TINYLLAMA_WHOLE_MODEL_ADAMW;
      }
    };
    for (const dtype of ["f32", "bf16"] as const) {
      const whole = run(dtype, false);
      const each = run(dtype, true);
      expect(whole.length).toBe(each.length);
      whole.forEach((a, i) => {
        expect(
          Buffer.from(a.buffer).equals(Buffer.from(each[i]!.buffer)),
          `${dtype} tensor ${i}`,
        ).toBe(true);
      });
    }
    // The test model of the test above has 16-value norms: gaps, so it keeps one call per tensor.
    const gapped = new Trainer(
      new LlamaModel(k, microConfig()),
      { microBatch: 1, seqLen: 4, accumSteps: 1 },
      TINYLLAMA_ADAMW,
    );
    expect(gapped.wholeModelUpdate).toBeNull();
    gapped.dispose();
  });
});

/** `k` whose `method` throws a device out-of-memory error on its `failAt`-th call (1-based). */
function failingBackend(k: Backend, method: "arena" | "zeros", failAt: number): Backend {
  let calls = 0;
  return new Proxy(k, {
    get(target, p, receiver) {
      const v = Reflect.get(target, p, receiver);
      if (p !== method) return v;
      return (...args: unknown[]) => {
        if (++calls === failAt) throw new Error("cuda out of memory (injected)");
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe("Trainer construction", () => {
  it("frees every arena it made when a later one fails (out of memory): no leak until a GC", async () => {
    const k = await loadBackend("cpu");
    const cases = [
      { computeDtype: "f32" as const },
      { computeDtype: "bf16" as const }, // fp32 master arena too
      { computeDtype: "f32" as const, dataParallel: { size: 2, shardGroupSize: 2 } },
    ];
    for (const c of cases) {
      const opts = c.dataParallel ? { dataParallel: c.dataParallel } : {};
      // Arenas the Trainer allocates (gradients, moments, master, activations): the model's is first.
      const probe = new Trainer(
        new LlamaModel(failingBackend(k, "arena", 0), microConfig(), c),
        { microBatch: 2, seqLen: 8, accumSteps: 1 },
        TINYLLAMA_ADAMW,
        opts,
      );
      probe.dispose();
      const start = k.stats();
      for (let failAt = 2; ; failAt++) {
        const model = new LlamaModel(failingBackend(k, "arena", failAt), microConfig(), c);
        const before = k.stats();
        let trainer: Trainer | null = null;
        try {
          trainer = new Trainer(
            model,
            { microBatch: 2, seqLen: 8, accumSteps: 1 },
            TINYLLAMA_ADAMW,
            opts,
          );
        } catch (e) {
          expect((e as Error).message).toMatch(/out of memory/);
        }
        if (trainer) {
          trainer.dispose();
          break; // every allocation of the constructor has been made to fail once
        }
        // Nothing of the failed Trainer is alive (the model is still the caller's).
        expect(k.stats().liveTensors, `${JSON.stringify(c)}, arena ${failAt} fails`).toBe(
          before.liveTensors,
        );
        expect(k.stats().liveBytes).toBe(before.liveBytes);
        model.dispose();
        expect(failAt).toBeLessThan(10);
      }
      expect(k.stats().liveTensors).toBe(start.liveTensors);
      expect(k.stats().liveBytes).toBe(start.liveBytes);
    }
  });
});
