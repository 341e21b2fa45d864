import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type LlamaConfig, modelConfig, parameterSpecs } from "../model/config.js";
import { LlamaModel } from "../model/llama.js";
import { CONFIG_FILE, loadWeights, writeHfModel } from "./hf.js";

const root = mkdtempSync(join(tmpdir(), "tinyllama-hf-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Deterministic weights large enough that attention (and so RoPE) shapes the logits. */
function hfDir(name: string, cfg: LlamaConfig, edit?: (c: Record<string, unknown>) => void) {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  let s = 12345;
  const rnd = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const data = new Map<string, Float32Array>();
  for (const p of parameterSpecs(cfg)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = p.initOnes ? 1 + 0.2 * rnd() : 2 * rnd();
    data.set(p.name, a);
  }
  writeHfModel(dir, cfg, (n) => data.get(n)!);
  if (edit) {
    const path = join(dir, CONFIG_FILE);
    const c = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    edit(c);
    writeFileSync(path, JSON.stringify(c));
  }
  return dir;
}

async function logits(dir: string): Promise<Float32Array> {
  const m = await LlamaModel.load(dir, { device: "cpu" });
  try {
    const ids = Int32Array.from([1, 450, 4996, 17354, 1701, 29916, 432, 17204]);
    return m.logits(ids, 1, ids.length).slice();
  } finally {
    m.dispose();
  }
}

describe("Hugging Face config.json as transformers writes it", () => {
  it("transformers 5's rope_parameters.rope_theta is the RoPE base used (not the 10000 default)", async () => {
    const cfg = { ...modelConfig("tinyllama-test"), ropeTheta: 500000 };
    const legacy = hfDir("legacy", cfg);
    // The same weights with the config.json of transformers >= 5.
    const v5 = hfDir("v5", cfg, (c) => {
      delete c.rope_theta;
      delete c.rope_scaling;
      c.rope_parameters = { rope_theta: 500000, rope_type: "default" };
    });
    const base10k = hfDir("base10k", { ...cfg, ropeTheta: 10000 });
    expect(loadWeights(v5).config.ropeTheta).toBe(500000);
    const [a, b, c] = [await logits(legacy), await logits(v5), await logits(base10k)];
    expect(b).toEqual(a);
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - c[i]!));
    expect(diff).toBeGreaterThan(1e-3); // the RoPE base matters for these weights
  });

  it("fields that would be ignored are refused, naming the file and the field", async () => {
    const cfg = modelConfig("tinyllama-test");
    const cases: [string, (c: Record<string, unknown>) => void, RegExp][] = [
      [
        "linear",
        (c) => {
          c.rope_parameters = { rope_theta: 10000, rope_type: "linear", factor: 2 };
        },
        /rope_parameters has rope_type "linear"/,
      ],
      ["attn-bias", (c) => (c.attention_bias = true), /attention_bias is true/],
      ["mlp-bias", (c) => (c.mlp_bias = true), /mlp_bias is true/],
      ["gelu", (c) => (c.hidden_act = "gelu"), /hidden_act is "gelu"/],
    ];
    for (const [name, edit, re] of cases) {
      const dir = hfDir(name, cfg, edit);
      await expect(LlamaModel.load(dir, { device: "cpu" })).rejects.toThrow(re);
      expect(() => loadWeights(dir)).toThrow(join(dir, CONFIG_FILE));
    }
  });
});
