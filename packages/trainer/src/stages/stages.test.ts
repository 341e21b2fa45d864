import { describe, expect, it } from "vitest";
import { parseStage, parseVariant, stageSpec } from "./stages.js";

describe("stages", () => {
  it("v1.1 stages tile one 2T-token cosine schedule; cooldown batch is 4x", () => {
    const basic = stageSpec("basic", null);
    const cont = stageSpec("continual", "math-code");
    const cool = stageSpec("cooldown", "math-code");
    expect(basic.startTokens).toBe(0);
    expect(basic.endTokens).toBe(cont.startTokens);
    expect(cont.endTokens).toBe(cool.startTokens);
    expect(cool.endTokens).toBe(2e12);
    for (const s of [basic, cont, cool]) expect(s.decayTokens).toBe(2e12);
    expect(basic.batchSequences * 2048).toBe(1_835_008); // about 1.8M tokens
    expect(cool.batchMultiplier).toBe(4);
    expect(cont.previousDir).toBe("basic");
    expect(cool.previousDir).toBe("continual-math-code");
    expect(cont.presetName).toBe("v1.1-continual-math-code");
    expect(basic.warmupTokens).toBe(2000 * 896 * 2048);
  });

  it("v1.0 is one 3T-token stage with 2M-token batches", () => {
    const v = stageSpec("v1.0", null);
    expect(v.endTokens).toBe(3e12);
    expect(v.batchSequences * 2048).toBe(2_097_152);
  });

  it("--scale shrinks every budget by the same factor", () => {
    const a = stageSpec("continual", "chinese");
    const b = stageSpec("continual", "chinese", 1e-6);
    expect(b.startTokens).toBeCloseTo(a.startTokens * 1e-6, 3);
    expect(b.endTokens).toBeCloseTo(a.endTokens * 1e-6, 3);
    expect(b.warmupTokens).toBeCloseTo(a.warmupTokens * 1e-6, 3);
    expect(() => stageSpec("basic", null, 0)).toThrow(/--scale must be a positive number/);
  });

  it("rejects unknown stages and variants, and variants on stages without them", () => {
    expect(() => parseStage("pretrain")).toThrow(
      /unknown stage "pretrain"; stages are v1.0, basic, continual, cooldown/,
    );
    expect(() => parseVariant("german")).toThrow(
      /unknown variant "german"; variants are base, math-code, chinese/,
    );
    expect(() => stageSpec("basic", "chinese")).toThrow(
      /--variant applies to the continual and cooldown stages only/,
    );
  });
});
