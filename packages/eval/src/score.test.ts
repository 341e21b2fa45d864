import { describe, expect, it } from "vitest";
import { requestWindow, scoreRequests } from "./score.js";
import { logNormalize, positionalBigramScorer, ToyScorer, unigramScorer } from "./toy.js";
import type { TokenRequest } from "./types.js";

/** Scores one request directly from the model's distribution: the reference the engine must match. */
function bruteForce(scorer: ToyScorer, r: TokenRequest) {
  const w = requestWindow(r, scorer.maxLength);
  const dist = (scorer as unknown as { distribution: (p: Int32Array) => Float64Array })
    .distribution;
  let logprob = 0;
  let isGreedy = true;
  for (let t = w.firstTarget; t < w.tokens.length; t++) {
    const d = dist(w.tokens.subarray(0, t));
    logprob += d[w.tokens[t]!]!;
    const best = d.indexOf(Math.max(...d));
    if (best !== w.tokens[t]) isGreedy = false;
  }
  return { logprob, isGreedy };
}

describe("scoreRequests", () => {
  it("sums continuation log-probs of a unigram model (hand-computed)", async () => {
    // p = [.1, .2, .3, .4] over tokens 0..3
    const scorer = unigramScorer([1, 2, 3, 4]);
    const { results } = await scoreRequests(scorer, [
      { contextTokens: [0], continuationTokens: [3, 3] },
      { contextTokens: [0], continuationTokens: [1, 3] },
    ]);
    expect(results[0]!.logprob).toBeCloseTo(2 * Math.log(0.4), 12);
    expect(results[0]!.isGreedy).toBe(true);
    expect(results[1]!.logprob).toBeCloseTo(Math.log(0.2) + Math.log(0.4), 12);
    expect(results[1]!.isGreedy).toBe(false);
  });

  it("truncates from the left to maxLength + 1 tokens, keeping the whole continuation", async () => {
    const w = requestWindow({ contextTokens: [1, 2, 3, 4, 5], continuationTokens: [6, 7] }, 4);
    expect(Array.from(w.tokens)).toEqual([3, 4, 5, 6, 7]);
    expect(w.firstTarget).toBe(3);
    expect(w.truncated).toBe(true);
    const scorer = positionalBigramScorer(10, 4);
    const reqs = [
      { contextTokens: [1, 2, 3, 4, 5], continuationTokens: [6, 7] },
      { contextTokens: [3, 4, 5], continuationTokens: [6, 7] },
    ];
    const { results, stats } = await scoreRequests(scorer, reqs);
    // Both windows are [3,4,5,6,7]: identical scores, one forward.
    expect(results[0]).toEqual(results[1]);
    expect(results[0]!.logprob).toBeCloseTo(bruteForce(scorer, reqs[1]!).logprob, 12);
    expect(stats).toMatchObject({ requests: 2, windows: 1, truncated: 1 });
  });

  it("answers prefix windows from the longer window's forward and matches scoring each alone", async () => {
    const scorer = positionalBigramScorer(12, 64);
    const ctx = [5, 9, 2, 7];
    const reqs: TokenRequest[] = [
      { contextTokens: ctx, continuationTokens: [3] },
      { contextTokens: ctx, continuationTokens: [3, 4, 8] },
      { contextTokens: ctx, continuationTokens: [3, 4] },
      { contextTokens: ctx, continuationTokens: [6, 1] },
      { contextTokens: [5, 9], continuationTokens: [2, 7, 3] },
      { contextTokens: [11], continuationTokens: [10, 0] },
    ];
    const { results, stats } = await scoreRequests(scorer, reqs, { batchSize: 2 });
    // Windows: [5,9,2,7,3,4,8] hosts the first three and the fifth; [5,9,2,7,6,1]; [11,10,0].
    expect(stats.windows).toBe(3);
    expect(scorer.forwardWindows).toBe(3);
    reqs.forEach((r, i) => {
      const ref = bruteForce(scorer, r);
      expect(results[i]!.logprob).toBeCloseTo(ref.logprob, 12);
      expect(results[i]!.isGreedy).toBe(ref.isGreedy);
    });
  });

  it("forwards longest windows first in batches bounded by count and tokens", async () => {
    const scorer = unigramScorer([1, 1, 1, 1, 1, 1, 1, 1]);
    const reqs = [2, 6, 4, 3, 5].map((n, i) => ({
      contextTokens: [i],
      continuationTokens: Array(n).fill(i),
    }));
    const seen: number[][] = [];
    const spy = new ToyScorer(64, () => logNormalize([1, 1, 1, 1, 1, 1, 1, 1]));
    const original = spy.scoreWindows.bind(spy);
    spy.scoreWindows = async (ws) => {
      seen.push(ws.map((w) => w.tokens.length));
      return original(ws);
    };
    await scoreRequests(spy, reqs, { batchSize: 2, maxBatchTokens: 12 });
    // Lengths 7,6,5,4,3; 7+6 > 12 so 7 goes alone, then 6+5 = 11, then 4+3 = 7.
    expect(seen).toEqual([[7], [6, 5], [4, 3]]);
    const { results } = await scoreRequests(scorer, reqs);
    expect(results[1]!.logprob).toBeCloseTo(6 * Math.log(1 / 8), 12);
  });

  it("leaves is_greedy null when not asked for, with the same log-probs", async () => {
    const reqs = [{ contextTokens: [0], continuationTokens: [3, 3] }];
    const on = await scoreRequests(unigramScorer([1, 2, 3, 4]), reqs);
    const off = await scoreRequests(unigramScorer([1, 2, 3, 4]), reqs, { greedy: false });
    expect(off.results[0]).toEqual({ logprob: on.results[0]!.logprob, isGreedy: null });
    expect(on.results[0]!.isGreedy).toBe(true);
  });

  it("rejects requests the harness rejects, with the request index", async () => {
    const scorer = unigramScorer([1, 1], 4);
    await expect(
      scoreRequests(scorer, [
        { contextTokens: [0], continuationTokens: [1] },
        { contextTokens: [0], continuationTokens: [] },
      ]),
    ).rejects.toThrow(/request 1: empty continuation/);
    await expect(
      scoreRequests(scorer, [{ contextTokens: [], continuationTokens: [1] }]),
    ).rejects.toThrow(/request 0: empty context/);
    await expect(
      scoreRequests(scorer, [{ contextTokens: [0], continuationTokens: [1, 1, 1, 1, 1] }]),
    ).rejects.toThrow(/continuation of 5 tokens exceeds the model's max length 4/);
    await expect(
      scoreRequests(scorer, [{ contextTokens: [0], continuationTokens: [1] }], { batchSize: 0 }),
    ).rejects.toThrow(/batchSize must be a positive integer/);
  });

  it("rejects a model that returns the wrong number of results", async () => {
    const bad = new ToyScorer(8, () => logNormalize([1, 1]));
    bad.scoreWindows = async () => [];
    await expect(
      scoreRequests(bad, [{ contextTokens: [0], continuationTokens: [1] }]),
    ).rejects.toThrow(/model returned 0 results for 1 windows/);
  });
});
