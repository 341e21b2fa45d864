import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findCheckpoints, newestCheckpoint } from "./checkpoints.js";
import { defaultOutputDir } from "./cli.js";
import { type BlockSource, pickBlocks, shardPerplexity } from "./perplexity.js";
import { unigramScorer } from "./toy.js";

function blocks(data: number[][]): BlockSource {
  return {
    numBlocks: data.length,
    blockSize: data[0]!.length,
    readGlobalBlock: (i) => Uint16Array.from(data[i]!),
  };
}

describe("shardPerplexity", () => {
  it("averages the NLL of every target token (hand-computed with a unigram model)", async () => {
    // p = [.5, .25, .25]; block 0 targets 0,0,1 -> nll ln2+ln2+ln4 = 4 ln2; block 1 targets 2,2,2 -> 6 ln2
    const scorer = unigramScorer([2, 1, 1], 8);
    const r = await shardPerplexity(
      scorer,
      blocks([
        [1, 0, 0, 1],
        [0, 2, 2, 2],
      ]),
    );
    expect(r.tokens).toBe(6);
    expect(r.loss).toBeCloseTo((10 * Math.LN2) / 6, 12);
    expect(r.perplexity).toBeCloseTo(2 ** (10 / 6), 12);
    expect(r.bitsPerToken).toBeCloseTo(10 / 6, 12);
    // per-block means 4/3 ln2 and 2 ln2: sd |diff|/sqrt2, stderr = sd / sqrt2 = |diff| / 2
    expect(r.lossStderr).toBeCloseTo(((2 - 4 / 3) * Math.LN2) / 2, 12);
  });

  it("caps blocks evenly over the split and rejects blocks longer than the context", async () => {
    expect(pickBlocks(10, 3)).toEqual([0, 3, 6]);
    expect(pickBlocks(2, 5)).toEqual([0, 1]);
    await expect(shardPerplexity(unigramScorer([1, 1], 2), blocks([[0, 1, 0, 1]]))).rejects.toThrow(
      /blocks of 4 tokens need a context of 3; the model has 2/,
    );
    await expect(
      shardPerplexity(unigramScorer([1, 1], 8), {
        numBlocks: 0,
        blockSize: 3,
        readGlobalBlock: () => new Uint16Array(3),
      }),
    ).rejects.toThrow(/no blocks/);
  });
});

describe("shardPerplexity batching", () => {
  it("keeps each forward within maxBatchTokens (at least one block), with the same result", async () => {
    const data = Array.from({ length: 5 }, (_, b) => [b % 3, 1, 2, 0, 1, 2, 2, (b + 1) % 3]);
    const sizes: number[] = [];
    const base = unigramScorer([3, 2, 1], 16);
    const scorer = {
      ...base,
      maxLength: base.maxLength,
      description: base.description,
      scoreWindows: (w: Parameters<typeof base.scoreWindows>[0]) => {
        sizes.push(w.length);
        return base.scoreWindows(w);
      },
    };
    const all = await shardPerplexity(scorer, blocks(data), { batchSize: 4 });
    expect(sizes).toEqual([4, 1]);
    sizes.length = 0;
    // blocks of 8 tokens: 17 tokens hold two windows, 7 tokens still one
    const capped = await shardPerplexity(scorer, blocks(data), {
      batchSize: 4,
      maxBatchTokens: 17,
    });
    expect(sizes).toEqual([2, 2, 1]);
    sizes.length = 0;
    await shardPerplexity(scorer, blocks(data), { batchSize: 4, maxBatchTokens: 7 });
    expect(sizes).toEqual([1, 1, 1, 1, 1]);
    expect(capped).toEqual(all);
  });
});

describe("default output directory", () => {
  it("goes beside the run that made the checkpoint, else under runs/eval", () => {
    const t = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6));
    expect(defaultOutputDir("/w/runs/main/v1.0/checkpoints/step-000000000150", t)).toBe(
      "/w/runs/main/eval/v1.0-step-000000000150-2026-01-02T03-04-05-006Z",
    );
    expect(defaultOutputDir("/models/TinyLlama-1.1B", t)).toBe(
      join("runs", "eval", "TinyLlama-1.1B-2026-01-02T03-04-05-006Z"),
    );
  });
});

describe("newestCheckpoint", () => {
  it("picks the most recently written complete checkpoint in the trainer's layout", () => {
    const root = mkdtempSync(join(tmpdir(), "eval-runs-"));
    try {
      const make = (rel: string, mtime: number, complete = true) => {
        const dir = join(root, rel);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "config.json"), "{}");
        if (complete) {
          writeFileSync(join(dir, "trainer-state.json"), "{}");
          utimesSync(join(dir, "trainer-state.json"), mtime, mtime);
        }
      };
      make("main/v1.0/checkpoints/step-000000000100", 1000);
      make("main/v1.0/checkpoints/step-000000000200", 2000);
      make("main/v1.0/checkpoints/step-000000000300", 3000, false); // still being written
      make("other/cooldown/checkpoints/step-000000000050", 1500);
      expect(findCheckpoints(root)).toHaveLength(3);
      expect(newestCheckpoint(root).path).toBe(
        join(root, "main/v1.0/checkpoints/step-000000000200"),
      );
      expect(() => newestCheckpoint(join(root, "none"))).toThrow(/no checkpoint under/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
