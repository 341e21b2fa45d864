import { describe, expect, it } from "vitest";
import { argmax, sortedCandidates, TokenSampler } from "./sampling.js";

const logitsOf = (probs: number[]) => Float32Array.from(probs.map((p) => Math.log(p)));

function counts(s: TokenSampler, logits: Float32Array, draws: number): number[] {
  const c: number[] = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < draws; i++) {
    const t = s.next(logits, 0, logits.length);
    c[t] = (c[t] ?? 0) + 1;
  }
  return c;
}

describe("TokenSampler", () => {
  it("argmax is torch.argmax: the first index on ties, the first NaN above all", () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(argmax([0, Number.NaN, 1, Number.NaN])).toBe(1);
    expect(argmax([Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY])).toBe(0);
    expect(argmax(Float32Array.from([9, 1, 5, 5]), 1, 4)).toBe(1);
  });

  it("samples the softmax at temperature 1", () => {
    const c = counts(new TokenSampler({ temperature: 1 }, 1), logitsOf([0.5, 0.3, 0.2]), 4000);
    expect(c[0]! / 4000).toBeCloseTo(0.5, 1);
    expect(c[1]! / 4000).toBeCloseTo(0.3, 1);
    expect(c[2]! / 4000).toBeCloseTo(0.2, 1);
  });

  it("top-p keeps the smallest set reaching p; top-k the k best", () => {
    const l = logitsOf([0.2, 0.5, 0.05, 0.25]);
    const p = counts(new TokenSampler({ temperature: 1, topP: 0.7 }, 2), l, 2000);
    expect(p[0]).toBe(0); // 0.5 + 0.25 >= 0.7: tokens 1 and 3 only
    expect(p[2]).toBe(0);
    expect(p[1]! / 2000).toBeCloseTo(0.5 / 0.75, 1);
    const k = counts(new TokenSampler({ temperature: 1, topK: 2 }, 2), l, 2000);
    expect(k[0]! + k[2]!).toBe(0);
    // A low temperature sharpens towards the argmax.
    const cold = counts(new TokenSampler({ temperature: 0.05 }, 3), l, 500);
    expect(cold[1]).toBe(500);
    // so low that logit / T overflows: still the argmax, not the last candidate
    const frozen = counts(new TokenSampler({ temperature: 1e-320 }, 3), l, 100);
    expect(frozen[1]).toBe(100);
  });

  it("is reproducible by seed", () => {
    const l = logitsOf([0.25, 0.25, 0.25, 0.25]);
    const a = new TokenSampler({ temperature: 1 }, 11);
    const b = new TokenSampler({ temperature: 1 }, 11);
    const seqA = Array.from({ length: 50 }, () => a.next(l, 0, 4));
    const seqB = Array.from({ length: 50 }, () => b.next(l, 0, 4));
    expect(seqA).toEqual(seqB);
    expect(new Set(seqA).size).toBe(4);
  });

  it("an infinite logit takes all the mass, not the least likely candidate", () => {
    const inf = Float32Array.from([0, Number.POSITIVE_INFINITY, 1, -2]);
    for (const o of [
      { temperature: 1 },
      { temperature: 0.7, topP: 0.5 },
      { temperature: 2, topK: 3 },
    ]) {
      expect(counts(new TokenSampler(o, 5), inf, 50)[1]).toBe(50);
    }
    // two infinite logits share the mass; finite ones get none
    const two = counts(
      new TokenSampler({ temperature: 1 }, 6),
      Float32Array.from([Number.POSITIVE_INFINITY, 3, Number.POSITIVE_INFINITY]),
      400,
    );
    expect(two[1]).toBe(0);
    expect(two[0]! / 400).toBeCloseTo(0.5, 1);
  });

  it("refuses bad options", () => {
    expect(() => new TokenSampler({ temperature: Number.NaN }, 0)).toThrow(/temperature/);
    expect(() => new TokenSampler({ topK: 1.5 }, 0)).toThrow(/topK/);
    expect(() => new TokenSampler({ topP: 1.2 }, 0)).toThrow(/topP/);
  });
});

describe("sortedCandidates", () => {
  /** The order the sampler used to take, by a comparator sort. */
  const reference = (row: Float32Array): number[] => {
    const idx: number[] = [];
    row.forEach((x, j) => {
      if (!Number.isNaN(x)) idx.push(j);
    });
    return idx.sort((a, b) => row[b]! - row[a]! || a - b);
  };

  it("orders as the comparator sort: logit descending, index ascending on ties, NaN left out", () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const special = [0, -0, Infinity, -Infinity, Number.NaN, 1e-45, -1e-45, 3.4e38, -3.4e38];
    for (let trial = 0; trial < 40; trial++) {
      const vocab = [1, 2, 7, 100, 32000][trial % 5]!;
      const row = new Float32Array(vocab);
      for (let j = 0; j < vocab; j++) {
        const r = rand();
        // many exact ties (a few distinct values), specials, and spread-out values
        row[j] =
          r < 0.2
            ? special[Math.floor(rand() * special.length)]!
            : r < 0.5
              ? Math.floor(rand() * 4) - 2
              : (rand() - 0.5) * 40;
      }
      expect(Array.from(sortedCandidates(row, 0, vocab))).toEqual(reference(row));
    }
    // an offset into a batch of rows
    const rows = new Float32Array([5, 1, 1, Number.NaN, 2, -0, 0, 2]);
    expect(Array.from(sortedCandidates(rows, 4, 4))).toEqual([0, 3, 1, 2]);
  });
});
