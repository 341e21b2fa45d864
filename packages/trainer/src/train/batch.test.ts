/**
 * The batch split: a refusal names one flag change that works, so following the advice never
 * leads to a second refusal (the CPU defaults on 2 ranks used to be refused twice, the first
 * time with advice that did not help).
 */
import { describe, expect, it } from "vitest";
import { BatchSplitError, planBatch } from "./batch.js";

describe("planBatch", () => {
  it("splits a batch into ranks and micro-batches", () => {
    expect(
      planBatch({ baseSeqs: 8, multiplier: 1, microBatch: 8, worldSize: 1, seqLen: 128 }),
    ).toEqual({ globalSeqs: 8, perRank: 8, accumSteps: 1 });
    // The paper's v1.1 setup: 896 x 2048 on 8 GPUs at micro-batch 8, x4 in the cooldown.
    expect(
      planBatch({ baseSeqs: 896, multiplier: 4, microBatch: 8, worldSize: 8, seqLen: 2048 }),
    ).toEqual({ globalSeqs: 3584, perRank: 448, accumSteps: 56 });
  });

  it("the CPU defaults on 2 ranks: one message with a global batch that works", () => {
    const shape = { baseSeqs: 8, multiplier: 1, microBatch: 8, worldSize: 2, seqLen: 128 };
    expect(() => planBatch(shape)).toThrow(
      /with 2 ranks each rank trains 4 of the 8 sequences per step, which must be a multiple of 16 \(whole 2048-token blocks \(16 sequences of 128 tokens\) in micro-batches of 8\); use --global-batch 32 \(16 sequences per rank, 2 micro-batches of 8 each\)$/,
    );
    expect(planBatch({ ...shape, baseSeqs: 32 })).toEqual({
      globalSeqs: 32,
      perRank: 16,
      accumSteps: 2,
    });
  });

  it("following the advice always works", () => {
    let refused = 0;
    for (const worldSize of [1, 2, 3, 4, 8])
      for (const seqLen of [64, 128, 512, 2048])
        for (const microBatch of [1, 3, 4, 8, 12])
          for (const multiplier of [1, 4])
            for (const baseSeqs of [1, 3, 8, 24, 100, 896]) {
              const shape = { baseSeqs, multiplier, microBatch, worldSize, seqLen };
              let message: string;
              try {
                planBatch(shape);
                continue;
              } catch (e) {
                expect(e).toBeInstanceOf(BatchSplitError);
                message = (e as Error).message;
              }
              refused++;
              const advice = /use --(global-batch|micro-batch) (\d+)/.exec(message);
              expect(advice, message).not.toBeNull();
              const value = Number(advice![2]);
              const fixed =
                advice![1] === "global-batch"
                  ? { ...shape, baseSeqs: value }
                  : { ...shape, microBatch: value };
              expect(() => planBatch(fixed), message).not.toThrow();
              if (advice![1] === "global-batch") expect(value).toBeGreaterThanOrEqual(baseSeqs);
              else expect(value).toBeLessThan(microBatch);
            }
    expect(refused).toBeGreaterThan(100);
  });
});
