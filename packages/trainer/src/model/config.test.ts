import { describe, expect, it } from "vitest";
import {
  fromHfConfig,
  MODEL_CONFIGS,
  modelConfig,
  modelFlopsUtilization,
  parameterCount,
  parameterSpecs,
  toHfConfig,
  trainFlopsPerToken,
  validateConfig,
} from "./config.js";

describe("model configs", () => {
  it("tinyllama-1.1b is the paper's model: 1,100,048,384 parameters and the reference init", () => {
    const c = modelConfig("tinyllama-1.1b");
    expect(parameterCount(c)).toBe(1_100_048_384);
    expect(c.initStd).toBeCloseTo(0.013975, 6);
    expect(c.initStdResidual).toBeCloseTo(0.0010044, 6);
    expect(trainFlopsPerToken(c, 2048) / 1e9).toBeCloseTo(7.15, 1);
    const specs = parameterSpecs(c);
    expect(specs.find((s) => s.name === "model.layers.21.self_attn.k_proj.weight")?.shape).toEqual([
      256, 2048,
    ]);
    expect(specs.find((s) => s.name === "lm_head.weight")?.shape).toEqual([32000, 2048]);
  });

  it("MFU divides the job's rate among its devices (4 GPUs at the 1-GPU rate each read as that GPU's MFU)", () => {
    const c = modelConfig("tinyllama-1.1b");
    const perToken = trainFlopsPerToken(c, 2048);
    const one = modelFlopsUtilization(48_200, perToken, 989e12, 1);
    expect(one).toBeCloseTo(0.3486, 3);
    expect(modelFlopsUtilization(4 * 48_200, perToken, 989e12, 4)).toBeCloseTo(one, 12);
    expect(() => modelFlopsUtilization(1, perToken, 989e12, 0)).toThrow(/whole number of devices/);
    expect(() => modelFlopsUtilization(1, perToken, 0, 1)).toThrow(/positive peak/);
  });

  it("every registered config is valid and keeps the 32000-token vocabulary", () => {
    for (const c of Object.values(MODEL_CONFIGS)) {
      validateConfig(c);
      expect(c.vocabSize).toBe(32000);
    }
    expect(parameterCount(modelConfig("tinyllama-4m"))).toBeLessThan(5e6);
  });

  it("round-trips through a Hugging Face config.json", () => {
    const c = modelConfig("tinyllama-1.1b");
    const hf = toHfConfig(c);
    expect(hf.num_key_value_heads).toBe(4);
    expect(hf.tie_word_embeddings).toBe(false);
    const back = fromHfConfig(JSON.parse(JSON.stringify(hf)));
    expect(back).toEqual(c);
  });

  it("rejects unknown models and broken configs with the field named", () => {
    expect(() => modelConfig("gpt2")).toThrow(/unknown model "gpt2"; known models: tinyllama-1.1b/);
    expect(() => validateConfig({ ...modelConfig("tinyllama-test"), numKvHeads: 3 })).toThrow(
      /numHeads 4 is not a multiple of numKvHeads 3/,
    );
    expect(() =>
      fromHfConfig({ ...toHfConfig(modelConfig("tinyllama-test")), model_type: "gpt2" }),
    ).toThrow(/only "llama"/);
    expect(() =>
      fromHfConfig({ ...toHfConfig(modelConfig("tinyllama-test")), tie_word_embeddings: true }),
    ).toThrow(/tied embeddings/);
  });
});
