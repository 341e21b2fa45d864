import { describe, expect, it } from "vitest";
import { argmax, meanStderr, scoreMultipleChoice } from "./metrics.js";

describe("multiple-choice metrics", () => {
  it("argmax takes the first of ties and treats NaN as the maximum, like numpy", () => {
    expect(argmax([-2, -1, -1])).toBe(1);
    expect(argmax([-2, Number.NaN, 0])).toBe(1);
    expect(() => argmax([])).toThrow(/empty/);
  });

  it("acc_norm divides by the choice's length in code points", () => {
    // lls -6 and -8: acc picks 0; per character -6/3 = -2 vs -8/5 = -1.6 picks 1.
    const s = scoreMultipleChoice([-6, -8], ["abc", "abcde"], 1);
    expect(s).toMatchObject({ pred: 0, predNorm: 1, acc: 0, acc_norm: 1 });
    // Chinese: 2 and 4 characters (not 6 and 12 bytes).
    const zh = scoreMultipleChoice([-3, -5], ["是的", "不是的吧"], 1);
    expect(zh.predNorm).toBe(1);
    // An emoji is one character to Python.
    expect(scoreMultipleChoice([-2, -3], ["🦙", "ab"], 1).predNorm).toBe(1);
  });

  it("a gold index outside the choices scores 0 and is flagged", () => {
    const s = scoreMultipleChoice([-1, -2], ["a", "b"], 5);
    expect(s).toMatchObject({ acc: 0, acc_norm: 0, goldInRange: false });
  });

  it("rejects a mismatch between log-likelihoods and choices", () => {
    expect(() => scoreMultipleChoice([-1], ["a", "b"], 0)).toThrow(
      /1 log-likelihoods for 2 choices/,
    );
  });

  it("stderr is the sample standard deviation over sqrt(n)", () => {
    // mean 0.75, squared deviations 3 * 0.0625 + 0.5625 = 0.75, / (n - 1) = 0.25, sd 0.5, / 2.
    expect(meanStderr([1, 0, 1, 1])).toBeCloseTo(0.25, 12);
    // equals sqrt(p (1 - p) / (n - 1)) for 0/1 values
    const v = [1, 0, 0, 1, 1, 0, 1];
    const p = 4 / 7;
    expect(meanStderr(v)).toBeCloseTo(Math.sqrt((p * (1 - p)) / 6), 12);
    expect(meanStderr([1])).toBe("N/A");
  });
});
