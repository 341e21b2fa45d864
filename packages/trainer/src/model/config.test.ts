import { describe, expect, it } from "vitest";
import {
  fromHfConfig,
  MODEL_CONFIGS,
  modelConfig,
  modelFlopsUtilization,
  parameterCount,
  parameterSpecs,
  sameArchitecture,
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

  it("reads transformers 5's rope_parameters and refuses fields it would otherwise ignore", () => {
    const legacy = toHfConfig(modelConfig("tinyllama-test"));
    // transformers >= 5 writes RoPE as rope_parameters (no top-level rope_theta/rope_scaling).
    const { rope_theta: _t, rope_scaling: _s, ...v5 } = legacy;
    const at = (theta: number, type = "default") => ({
      ...v5,
      rope_parameters: { rope_theta: theta, rope_type: type },
    });
    expect(fromHfConfig(at(500000)).ropeTheta).toBe(500000);
    expect(fromHfConfig(at(10000)).ropeTheta).toBe(10000);
    expect(fromHfConfig({ ...legacy, rope_theta: 500000 }).ropeTheta).toBe(500000);
    expect(fromHfConfig({ ...legacy, rope_scaling: { rope_type: "default" } }).ropeTheta).toBe(
      10000,
    );
    expect(() => fromHfConfig({ ...at(500000), rope_theta: 10000 })).toThrow(
      /rope_theta 10000 and rope_parameters.rope_theta 500000 differ/,
    );
    expect(() => fromHfConfig(at(10000, "linear"))).toThrow(
      /rope_parameters has rope_type "linear"; RoPE scaling is not supported/,
    );
    expect(() => fromHfConfig(at(500000, "llama3"))).toThrow(/rope_type "llama3"/);
    expect(() => fromHfConfig({ ...legacy, rope_scaling: { type: "dynamic", factor: 2 } })).toThrow(
      /rope_scaling has rope_type "dynamic"/,
    );
    expect(() => fromHfConfig({ ...legacy, attention_bias: true })).toThrow(
      /attention_bias is true; biases are not supported/,
    );
    expect(() => fromHfConfig({ ...legacy, mlp_bias: true })).toThrow(/mlp_bias is true/);
    expect(() => fromHfConfig({ ...legacy, hidden_act: "gelu" })).toThrow(
      /hidden_act is "gelu", only "silu"/,
    );
    expect(fromHfConfig({ ...legacy, hidden_act: "swish" }).name).toBe("tinyllama-test");
  });

  it("weights of another RoPE base or norm epsilon do not fit a config (no silent change)", () => {
    const c = modelConfig("tinyllama-test");
    expect(sameArchitecture(c, { ...c })).toBeNull();
    expect(sameArchitecture({ ...c, ropeTheta: 500000 }, c)).toBe(
      "ropeTheta (rope_theta) 500000 != 10000",
    );
    expect(sameArchitecture({ ...c, rmsNormEps: 1e-6 }, c)).toMatch(/^rmsNormEps \(rms_norm_eps\)/);
  });
});
