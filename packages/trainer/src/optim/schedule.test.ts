import { describe, expect, it } from "vitest";
import {
  type CosineSchedule,
  describeSchedule,
  learningRate,
  validateSchedule,
} from "./schedule.js";

const s: CosineSchedule = { maxLr: 4e-4, minLr: 4e-5, warmupTokens: 1000, decayTokens: 11000 };

describe("token-based cosine schedule", () => {
  it("warms up linearly, decays by a half cosine to min lr, then stays there", () => {
    expect(learningRate(s, 0)).toBe(0);
    expect(learningRate(s, 500)).toBeCloseTo(2e-4, 12);
    expect(learningRate(s, 1000)).toBeCloseTo(4e-4, 12);
    expect(learningRate(s, 6000)).toBeCloseTo((4e-4 + 4e-5) / 2, 12);
    expect(learningRate(s, 11000)).toBeCloseTo(4e-5, 12);
    expect(learningRate(s, 1e9)).toBe(4e-5);
    let prev = Number.POSITIVE_INFINITY;
    for (let t = 1000; t <= 11000; t += 250) {
      const lr = learningRate(s, t);
      expect(lr).toBeLessThanOrEqual(prev);
      prev = lr;
    }
  });

  it("depends on tokens only: two batch sizes see the same lr at the same token count", () => {
    const small = [0, 1, 2, 3, 4].map((i) => learningRate(s, i * 2000));
    const large = [0, 1, 2].map((i) => learningRate(s, i * 4000));
    expect(large).toEqual([small[0], small[2], small[4]]);
  });

  it("refuses the reference run's bug (min lr == max lr) and other broken schedules", () => {
    expect(() => validateSchedule({ ...s, minLr: 4e-4 })).toThrow(
      /min lr 0.0004 must be below max lr 0.0004/,
    );
    expect(() => validateSchedule({ ...s, maxLr: 0 })).toThrow(/max lr must be > 0/);
    expect(() => validateSchedule({ ...s, decayTokens: 500 })).toThrow(/must come after warmup/);
    expect(() => validateSchedule({ ...s, warmupTokens: Number.NaN })).toThrow(/warmupTokens/);
    validateSchedule(s);
  });

  it("prints the schedule at given marks", () => {
    const text = describeSchedule(s, [{ label: "end", tokens: 11000 }]);
    expect(text).toMatch(/warmup 0 -> 4.00e-4 over 1.0k tokens, cosine to 4.00e-5 at 11.0k tokens/);
    expect(text).toMatch(/end .* lr 4.000e-5/);
  });
});
