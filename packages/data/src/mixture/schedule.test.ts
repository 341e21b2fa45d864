import { describe, expect, it } from "vitest";
import { PAPER_SHARES, PRESET_NAMES, preset } from "./presets.js";
import {
  CompiledSchedule,
  checkSchedule,
  constantSchedule,
  type MixtureSchedule,
  ScheduleError,
  scaleSchedule,
} from "./schedule.js";

const ramp: MixtureSchedule = {
  totalTokens: 1000,
  points: [
    { tokens: 0, weights: { a: 1, b: 0 } },
    { tokens: 100, weights: { a: 3, b: 1 } }, // normalised to 0.75 / 0.25
  ],
};

describe("CompiledSchedule", () => {
  it("normalises knots, interpolates linearly and holds outside the knots", () => {
    const c = new CompiledSchedule(ramp);
    expect(c.sources).toEqual(["a", "b"]);
    expect([...c.weightsAt(0)]).toEqual([1, 0]);
    expect([...c.weightsAt(50)]).toEqual([0.875, 0.125]);
    expect([...c.weightsAt(100)]).toEqual([0.75, 0.25]);
    expect([...c.weightsAt(1e12)]).toEqual([0.75, 0.25]);
    const late = new CompiledSchedule({
      totalTokens: 10,
      points: [{ tokens: 5, weights: { x: 2 } }],
    });
    expect([...late.weightsAt(0)]).toEqual([1]);
  });

  it("integrates exactly (matches a fine midpoint sum) and inverts its integral", () => {
    const c = new CompiledSchedule({
      totalTokens: 1000,
      points: [
        { tokens: 0, weights: { a: 0.2, b: 0.8 } },
        { tokens: 300, weights: { a: 0.9, b: 0.1 } },
        { tokens: 700, weights: { a: 0, b: 1 } },
      ],
    });
    for (const x of [0, 1, 150, 300, 512.5, 700, 999]) {
      const steps = 20000;
      let a = 0;
      for (let i = 0; i < steps; i++) a += c.weightsAt(((i + 0.5) * x) / steps)[0]! * (x / steps);
      expect(c.integralAt(x)[0]).toBeCloseTo(a, 4); // midpoint rule: exact except in the step over a knot
      const total = c.integralAt(x);
      expect(total[0]! + total[1]!).toBeCloseTo(x, 9);
    }
    for (const target of [0.5, 10, 100, 300, 312.7]) {
      const x = c.inverseIntegral(0, target);
      expect(c.integralAt(x)[0]).toBeCloseTo(target, 6);
    }
    // a's weight is 0 after 700 tokens: it never gets more than its integral up to there.
    expect(c.inverseIntegral(0, c.integralAt(700)[0]! + 1)).toBe(Number.POSITIVE_INFINITY);
  });

  it("rejects malformed schedules with messages that say what is wrong", () => {
    const bad: [unknown, RegExp][] = [
      [null, /expected an object/],
      [{ totalTokens: 10, points: [] }, /non-empty/],
      [{ totalTokens: 0, points: [{ tokens: 0, weights: { a: 1 } }] }, /totalTokens/],
      [{ totalTokens: 10, points: [{ tokens: 0, weights: { a: -1, b: 2 } }] }, /weights\.a/],
      [{ totalTokens: 10, points: [{ tokens: 0, weights: { a: 0 } }] }, /positive sum/],
      [{ totalTokens: 10, points: [{ tokens: 0, weights: { a: Number.NaN } }] }, /weights\.a/],
      [
        {
          totalTokens: 10,
          points: [
            { tokens: 5, weights: { a: 1 } },
            { tokens: 5, weights: { a: 1 } },
          ],
        },
        /greater than points\[0\]/,
      ],
      [{ totalTokens: 10, points: [{ tokens: -1, weights: { a: 1 } }] }, /tokens must be/],
      [{ totalTokens: 10, points: [{ tokens: 0, weights: [1] }] }, /weights must be an object/],
    ];
    for (const [schedule, message] of bad) {
      expect(() => checkSchedule(schedule)).toThrow(ScheduleError);
      expect(() => checkSchedule(schedule)).toThrow(message);
    }
    expect(() => new CompiledSchedule(ramp).weightsAt(-1)).toThrow(RangeError);
  });

  it("says NaN and Infinity in its messages, not null (JSON's spelling)", () => {
    const at = (v: number) => ({ totalTokens: 10, points: [{ tokens: 0, weights: { a: v } }] });
    expect(() => checkSchedule(at(Number.NaN))).toThrow(/weights\.a must be .*, got NaN$/);
    expect(() => checkSchedule(at(Number.POSITIVE_INFINITY))).toThrow(/got Infinity$/);
    expect(() =>
      checkSchedule({ totalTokens: Number.NaN, points: [{ tokens: 0, weights: { a: 1 } }] }),
    ).toThrow(/totalTokens must be a positive number, got NaN$/);
  });

  it("normalises each knot independently of the key order of its weights", () => {
    const forward = { a: 0.1, b: 0.2, c: 0.3, d: 0.4 }; // 0.1 + 0.2 + 0.3 + 0.4 != 0.4 + ... + 0.1
    const backward = { d: 0.4, c: 0.3, b: 0.2, a: 0.1 };
    const one = (weights: Record<string, number>) =>
      new CompiledSchedule({ totalTokens: 10, points: [{ tokens: 0, weights }] });
    expect([...one(backward).weightsAt(0)]).toEqual([...one(forward).weightsAt(0)]);
    expect([...one(backward).integralAt(7)]).toEqual([...one(forward).integralAt(7)]);
  });

  it("gives a source named like an Object.prototype member weight 0 where it is missing", () => {
    const c = new CompiledSchedule({
      totalTokens: 100,
      points: [
        { tokens: 0, weights: { a: 1 } },
        { tokens: 10, weights: { a: 1, constructor: 1, toString: 2 } },
      ],
    });
    expect(c.sources).toEqual(["a", "constructor", "toString"]);
    expect([...c.weightsAt(0)]).toEqual([1, 0, 0]);
    expect([...c.weightsAt(5)]).toEqual([0.625, 0.125, 0.25]);
    expect([...c.integralAt(20)].every(Number.isFinite)).toBe(true);
  });

  it("refuses a source named __proto__ (it cannot round-trip through plain objects)", () => {
    const raw = JSON.parse(
      '{"totalTokens":10,"points":[{"tokens":0,"weights":{"a":1,"__proto__":1}}]}',
    ) as unknown;
    expect(() => checkSchedule(raw)).toThrow(/"__proto__" is not a usable source name/);
  });

  it("scales every token position and survives a JSON round trip", () => {
    const s = scaleSchedule(preset("v1.1-continual-math-code"), 1e-3);
    expect(s.totalTokens).toBeCloseTo(350e6, 0);
    expect(s.points[1]!.tokens).toBeCloseTo(6e6, 0);
    const c1 = new CompiledSchedule(JSON.parse(JSON.stringify(s)));
    const c2 = new CompiledSchedule(s);
    expect([...c1.integralAt(123456)]).toEqual([...c2.integralAt(123456)]);
    expect(() => scaleSchedule(s, 0)).toThrow(RangeError);
    expect(constantSchedule({ a: 1 }, 5).points).toEqual([{ tokens: 0, weights: { a: 1 } }]);
  });
});

describe("presets", () => {
  it("exist for every stage, with the paper's budgets and steady-state shares", () => {
    const budgets: Record<string, number> = {
      "v1.0": 3e12,
      "v1.1-basic": 1.5e12,
      "v1.1-continual-base": 350e9,
      "v1.1-continual-math-code": 350e9,
      "v1.1-continual-chinese": 350e9,
      "v1.1-cooldown-base": 150e9,
      "v1.1-cooldown-math-code": 150e9,
      "v1.1-cooldown-chinese": 150e9,
    };
    for (const name of PRESET_NAMES) {
      const s = preset(name);
      expect(s.name).toBe(name);
      expect(s.totalTokens).toBe(budgets[name]);
      const end = new CompiledSchedule(s);
      const w = end.weightsAt(s.totalTokens);
      end.sources.forEach((src, i) => {
        expect(w[i]).toBeCloseTo(PAPER_SHARES[name][src] ?? 0, 12);
      });
    }
    expect(() => preset("v2")).toThrow(/known presets: v1.0/);
  });

  it("ramps the continual domain share linearly from 0 over 6B tokens, cooldown holds it", () => {
    const c = new CompiledSchedule(preset("v1.1-continual-chinese"));
    const sky = c.sources.indexOf("skypile");
    expect(c.weightsAt(0)[sky]).toBe(0);
    expect(c.weightsAt(3e9)[sky]).toBeCloseTo(0.25, 12);
    expect(c.weightsAt(6e9)[sky]).toBeCloseTo(0.5, 12);
    const mc = new CompiledSchedule(preset("v1.1-continual-math-code"));
    expect([...mc.weightsAt(1.5e9)].map((v) => +v.toFixed(12))).toEqual([0.025, 0.9375, 0.0375]);
    const cool = new CompiledSchedule(preset("v1.1-cooldown-math-code"));
    expect([...cool.weightsAt(0)]).toEqual([...cool.weightsAt(1e11)]);
  });
});
