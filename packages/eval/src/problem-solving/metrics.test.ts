import { describe, expect, it } from "vitest";
import {
  dropMetrics,
  dropScore,
  normalizeDropAnswer,
  pyFloatRepr,
  pyRound2,
} from "./drop-metrics.js";
import { PyRandom } from "./pyrandom.js";

describe("PyRandom matches CPython's random", () => {
  // Expected values printed by CPython 3.11: random.seed(s); random.getrandbits(32) / random.sample(...).
  it("seeds MT19937 like random.seed(int)", () => {
    const r = new PyRandom(0);
    expect([r.getrandbits(32), r.getrandbits(32), r.getrandbits(32)]).toEqual([
      3626764237, 1654615998, 3255389356,
    ]);
  });

  it("samples like random.sample (set and pool algorithms)", () => {
    const range = (n: number) => Array.from({ length: n }, (_, i) => i);
    expect(new PyRandom(0).sample(range(9536), 3)).toEqual([6311, 6890, 663]);
    expect(new PyRandom(0).sample(range(10), 3)).toEqual([6, 9, 0]);
    expect(new PyRandom(0).sample(range(30), 6)).toEqual([27, 12, 24, 13, 1, 8]);
    expect(new PyRandom(12345678901).sample(range(100), 8)).toEqual([
      76, 41, 49, 45, 68, 90, 14, 98,
    ]);
    expect(() => new PyRandom(0).sample([1, 2], 3)).toThrow(/larger than population/);
  });
});

describe("DROP official metrics", () => {
  // Expected values from drop_eval.py's get_metrics (run with numpy/scipy on these inputs).
  const cases: [string[], string[], number, number][] = [
    [["The Eagles"], ["eagles"], 1, 1],
    [["3 touchdowns"], ["3"], 0, 0.67],
    [["$1,000 dollars"], ["1000"], 0, 0.67],
    [["4 yards"], ["5 yards"], 0, 0],
    [["well-known field goal"], ["field goal kicker"], 0, 0.57],
    [["Smith", "Jones"], ["Jones", "Brown", "Smith"], 0, 0.67],
    [["1.50"], ["1.5"], 1, 1],
    [["an apple a day"], ["apple day"], 1, 1],
    [["1e5 yards"], ["100000"], 0, 0.67],
    [["0.00001"], ["1e-05"], 0, 0],
    [["Tom's 22-yard run"], ["22 yard"], 0, 0.67],
  ];
  it.each(cases)("%j vs %j", (pred, gold, em, f1) => {
    expect(dropMetrics(pred, gold)).toEqual({ em, f1 });
  });

  it("normalises like _normalize_answer", () => {
    expect(normalizeDropAnswer("Tom's 22-yard run")).toBe("toms 22.0 yard run");
    expect(normalizeDropAnswer("1e-05")).toBe("1e 5.0");
    expect(normalizeDropAnswer("  The   end. ")).toBe("end");
    expect(pyFloatRepr("1e16")).toBe("1e+16");
    expect(pyFloatRepr("123456789012345")).toBe("123456789012345.0");
    expect(pyFloatRepr("-0")).toBe("-0.0");
  });

  it("rounds F1 as Python's round(f1, 2): exact binary value, ties to even", () => {
    // 6 predicted tokens, 10 gold, 1 shared: P = 1/6, R = 1/10, F1 = 0.125 -> Python 0.12
    expect(dropMetrics(["x1 x2 x3 x4 x5 w"], ["w y1 y2 y3 y4 y5 y6 y7 y8 y9"]).f1).toBe(0.12);
    // Python: [round(x, 2) for x in xs]
    const xs = [0.125, 0.375, 0.625, 0.875, 0.675, 0.005, 0.015, 0.285, 2 / 3, 1 / 6, 0.1 + 0.2];
    expect(xs.map(pyRound2)).toEqual([
      0.12, 0.38, 0.62, 0.88, 0.68, 0.01, 0.01, 0.28, 0.67, 0.17, 0.3,
    ]);
    expect([0.045, 0.5, 1, 0].map(pyRound2)).toEqual([0.04, 0.5, 1, 0]);
  });

  it("takes the best over several gold answers", () => {
    expect(dropScore(["7"], [["six"], ["7"]])).toEqual({ em: 1, f1: 1 });
  });
});
