import { loadBackend } from "@tinyllama/kernels";
import { describe, expect, it } from "vitest";
import { parameterSpecs } from "../model/config.js";
import { LlamaModel } from "../model/llama.js";
import { Rng } from "../model/rng.js";
import { microConfig } from "../test-util/tiny.js";
import { generate } from "./generate.js";
import { KvDecoder } from "./kv-decoder.js";

describe("decoding in bf16 (the CUDA default, run on the CPU backend)", () => {
  it("matches full recomputation in bf16 and batching does not change tokens", async () => {
    const k = await loadBackend("cpu");
    const cfg = microConfig({ maxSeqLen: 64 });
    const m = new LlamaModel(k, cfg, { computeDtype: "bf16" });
    const rng = new Rng(3);
    for (const s of parameterSpecs(cfg)) {
      const d = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
      if (s.initOnes) d.fill(1);
      else rng.fillNormal(d, 0.3);
      m.setParam(s.name, d);
    }
    const V = cfg.vocabSize;
    const ids = [1, 9, 33, 4];
    const dec = new KvDecoder(m, { slots: 1, maxLen: 20 });
    let logits = dec.step([{ slot: 0, tokens: ids, pos: 0 }]);
    for (let s = 0; s < 10; s++) {
      const full = m.logits(Int32Array.from(ids), 1, ids.length).subarray((ids.length - 1) * V);
      let diff = 0;
      for (let j = 0; j < V; j++) diff = Math.max(diff, Math.abs(full[j]! - logits[j]!));
      expect(diff).toBeLessThan(0.05);
      let best = 0;
      for (let j = 1; j < V; j++) if (full[j]! > full[best]!) best = j;
      ids.push(best);
      logits = dec.step([{ slot: 0, tokens: [best], pos: ids.length - 1 }]);
    }
    dec.dispose();
    const prompts = [
      [1, 2, 3],
      [1, 50, 40, 30, 20, 10],
    ];
    const alone = prompts.map(
      (p) => generate(m, [p], { maxNewTokens: 8, eosTokenId: null })[0]!.tokens,
    );
    const both = generate(m, prompts, { maxNewTokens: 8, eosTokenId: null }).map((g) => g.tokens);
    expect(both).toEqual(alone);
    m.dispose();
  });
});
