// The LlamaModel adapter and `pnpm eval` end to end on a tiny random checkpoint on CPU
// (the trainer's 1-layer "tinyllama-test" config, written here in Hugging Face layout).
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ShardWriter, tokenizerIdentity } from "@tinyllama/data";
import { LlamaTokenizer } from "@tinyllama/tokenizer";
import { LlamaModel, MODEL_CONFIGS, parameterSpecs, writeHfModel } from "@tinyllama/trainer";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { main } from "./cli.js";
import { LlamaTokenScorer, loadCheckpoint, type SequenceScoringModel } from "./llama.js";
import { requestWindow, scoreRequests } from "./score.js";

let root: string;
let ckpt: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "eval-llama-"));
  ckpt = join(root, "ckpt");
  mkdirSync(ckpt);
  const config = MODEL_CONFIGS["tinyllama-test"]!;
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  writeHfModel(ckpt, config, (name) => {
    const spec = parameterSpecs(config).find((p) => p.name === name)!;
    const n = spec.shape.reduce((a, b) => a * b, 1);
    return Float32Array.from({ length: n }, () => (name.includes("norm") ? 1 : rnd() * 0.2));
  });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("LlamaTokenScorer", () => {
  it("maps scoreSequences positions to window targets", async () => {
    const fake: SequenceScoringModel = {
      config: { maxSeqLen: 8, vocabSize: 10 },
      scoreSequences: (seqs) =>
        seqs.map((s) => ({
          logProbs: Float32Array.from({ length: s.length - 1 }, (_, t) => -(t + 1)),
          greedy: Uint8Array.from({ length: s.length - 1 }, (_, t) => t % 2),
        })),
    };
    const scorer = new LlamaTokenScorer(fake);
    const [w] = await scorer.scoreWindows([
      {
        tokens: Int32Array.from([1, 2, 3, 4, 5]),
        scoreFrom: 3,
        greedyRanges: [
          [3, 4],
          [4, 5],
          [3, 5],
        ],
      },
    ]);
    // targets tokens[3], tokens[4] are predicted at t = 2, 3 (greedy flags 0 and 1 there)
    expect(Array.from(w!.logprobs)).toEqual([-3, -4]);
    expect(w!.greedy).toEqual([false, true, false]);
    const [none] = await scorer.scoreWindows([
      { tokens: Int32Array.from([1, 2, 3]), scoreFrom: 1 },
    ]);
    expect(none!.greedy).toBeNull();
    expect(() => new LlamaTokenScorer(fake, { maxLength: 9 })).toThrow(
      /exceeds the model's context/,
    );
  });

  it("the loss-based fast path equals scoreSequences (log-probs and greedy flags)", async () => {
    const model = await LlamaModel.load(ckpt, { device: "cpu" });
    try {
      const fast = new LlamaTokenScorer(model);
      const slow = new LlamaTokenScorer(model, { fastPath: false });
      const everyTarget = (from: number, to: number): [number, number][] => [
        [from, to],
        ...Array.from({ length: to - from }, (_, j): [number, number] => [from + j, from + j + 1]),
      ];
      const windows = [
        {
          tokens: Int32Array.from([1, 450, 4996, 17354, 1701, 29916, 975, 278]),
          scoreFrom: 5,
          greedyRanges: everyTarget(5, 8),
        },
        {
          tokens: Int32Array.from([1, 15043, 3186]),
          scoreFrom: 1,
          greedyRanges: everyTarget(1, 3),
        },
        {
          tokens: Int32Array.from([29871, 13, 13, 13, 13]),
          scoreFrom: 4,
          greedyRanges: everyTarget(4, 5),
        },
      ];
      const a = await fast.scoreWindows(windows);
      const b = await slow.scoreWindows(windows);
      expect(a.map((w) => w.logprobs.length)).toEqual([3, 2, 1]);
      a.forEach((w, i) => {
        for (const [j, lp] of w.logprobs.entries()) expect(lp).toBeCloseTo(b[i]!.logprobs[j]!, 4);
        expect(w.greedy).toEqual(b[i]!.greedy);
        expect(w.greedy).toHaveLength(windows[i]!.greedyRanges.length);
      });
      // A window whose last token is the model's argmax: greedy must be 1 there on both paths.
      const prefix = [1, 450, 4996];
      const logits = model.logits(Int32Array.from(prefix), 1, prefix.length);
      const last = logits.subarray(2 * 32000, 3 * 32000);
      const best = last.indexOf(Math.max(...last));
      const greedyWindow = [
        {
          tokens: Int32Array.from([...prefix, best]),
          scoreFrom: 1,
          greedyRanges: [[3, 4] as [number, number]],
        },
      ];
      expect((await fast.scoreWindows(greedyWindow))[0]!.greedy).toEqual([true]);
      expect((await slow.scoreWindows(greedyWindow))[0]!.greedy).toEqual([true]);
      const noGreedy = await fast.scoreWindows(
        windows.map(({ tokens, scoreFrom }) => ({ tokens, scoreFrom })),
      );
      expect(noGreedy.map((w) => w.greedy)).toEqual([null, null, null]);
      expect(Array.from(noGreedy[0]!.logprobs)).toEqual(Array.from(a[0]!.logprobs));
      await expect(
        fast.scoreWindows([{ tokens: Int32Array.from([1, 32000]), scoreFrom: 1 }]),
      ).rejects.toThrow(/out of the vocabulary/);
      // Padding changes no score: a batch padded to 7 (no rounding), 8 or 64 positions.
      for (const padMultiple of [1, 8]) {
        const padded = new LlamaTokenScorer(model, { padMultiple });
        const c = await padded.scoreWindows(windows);
        c.forEach((w, i) => {
          for (const [j, lp] of w.logprobs.entries())
            expect(lp, `padMultiple ${padMultiple}`).toBeCloseTo(a[i]!.logprobs[j]!, 4);
          expect(w.greedy).toEqual(a[i]!.greedy);
        });
      }
      for (const bad of [0, -8, 2.5, Number.NaN])
        expect(() => new LlamaTokenScorer(model, { padMultiple: bad })).toThrow(
          /padMultiple must be a positive integer/,
        );
    } finally {
      model.dispose();
    }
  });

  it("batched, prefix-shared scoring equals scoring each request alone with the real model", async () => {
    const model = await LlamaModel.load(ckpt, { device: "cpu" });
    try {
      const scorer = new LlamaTokenScorer(model, { maxLength: 12 });
      const ctx = [1, 450, 4996, 17354, 1701, 29916, 975];
      const requests = [
        { contextTokens: ctx, continuationTokens: [278] },
        { contextTokens: ctx, continuationTokens: [278, 17366] },
        { contextTokens: ctx, continuationTokens: [11203, 29889, 13] },
        { contextTokens: [...ctx, ...ctx], continuationTokens: [278, 17366] }, // truncated left
      ];
      const { results, stats } = await scoreRequests(scorer, requests, { batchSize: 3 });
      expect(stats.windows).toBe(3);
      expect(stats.truncated).toBe(1);
      for (const [i, r] of requests.entries()) {
        const w = requestWindow(r, 12);
        const [alone] = model.scoreSequences([w.tokens]);
        let expected = 0;
        for (let t = w.firstTarget; t < w.tokens.length; t++) expected += alone!.logProbs[t - 1]!;
        expect(results[i]!.logprob).toBeCloseTo(expected, 4);
      }
    } finally {
      model.dispose();
    }
  });
});

describe("pnpm eval (cli main)", () => {
  it("scores fixtures with a checkpoint and writes harness-shaped results and samples", async () => {
    const out = join(root, "out");
    const code = await main([
      "--checkpoint",
      ckpt,
      "--tasks",
      "boolq,xnli_zh,winogrande",
      "--device",
      "cpu",
      "--output",
      out,
      "--log-samples",
      "--harness",
      "0.4.9.2",
    ]);
    expect(code).toBe(0);
    const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    expect(Object.keys(json.results)).toEqual(["boolq", "xnli_zh", "winogrande"]);
    expect(json.results.boolq["acc,none"]).toBeGreaterThanOrEqual(0);
    expect(json.tinyllama_ts.add_bos).toBe(true);
    expect(json.tinyllama_ts.data).toMatch(/fixtures/);
    const samples = readFileSync(join(out, "samples_boolq.jsonl"), "utf8").trim().split("\n");
    expect(samples).toHaveLength(4);
    const first = JSON.parse(samples[0]!);
    expect(first.context_tokens[0][0]).toBe(1); // BOS with the 0.4.9.2 preset
    expect(first.resps).toHaveLength(2);
  });

  it("given a run directory, scores its newest checkpoint and writes results beside the run", async () => {
    const stepDir = join(root, "runs-layout", "my-run", "v1.0", "checkpoints", "step-000000000007");
    mkdirSync(stepDir, { recursive: true });
    cpSync(ckpt, stepDir, { recursive: true });
    writeFileSync(join(stepDir, "trainer-state.json"), "{}"); // what marks a checkpoint complete
    const cwd = process.cwd();
    process.chdir(root);
    try {
      const run = join(root, "runs-layout", "my-run");
      expect(await main(["--checkpoint", run, "--tasks", "piqa", "--device", "cpu"])).toBe(0);
      const evalDirs = readdirSync(join(run, "eval"));
      expect(evalDirs).toHaveLength(1);
      expect(evalDirs[0]).toMatch(/^v1\.0-step-000000000007-/);
      const json = JSON.parse(
        readFileSync(join(run, "eval", evalDirs[0]!, "results.json"), "utf8"),
      );
      expect(json.model_name).toBe(stepDir);
      expect(existsSync(join(root, "runs", "eval"))).toBe(false);
    } finally {
      process.chdir(cwd);
    }
  });

  it("on a full run of real data warns when a task's doc count is not its split's size", async () => {
    const dataDir = join(root, "short-mirror");
    mkdirSync(join(dataDir, "piqa"), { recursive: true });
    writeFileSync(
      join(dataDir, "piqa", "validation.jsonl"),
      '{"goal":"g","sol1":"a","sol2":"b","label":1}\n',
    );
    const out = join(root, "short");
    const warnings: string[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((m: unknown) => {
      warnings.push(String(m));
    });
    try {
      const args = ["--checkpoint", ckpt, "--tasks", "piqa", "--device", "cpu", "--output", out];
      expect(await main([...args, "--data-dir", dataDir, "--harness", "0.4.2", "--add-bos"])).toBe(
        0,
      );
    } finally {
      spy.mockRestore();
    }
    expect(warnings.join("\n")).toMatch(
      /WARNING piqa: 1 docs in .*validation\.jsonl; the validation split of baber\/piqa has 1838/,
    );
    const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    expect(json.tinyllama_ts.doc_count_mismatch).toEqual({ piqa: { found: 1, expected: 1838 } });
    expect(json.tinyllama_ts.harness_preset).toBe("0.4.2");
    expect(json.tinyllama_ts.harness_equivalent).toBe(
      "lm-eval 0.4.0 - 0.4.2 with add_bos_token=True",
    );
    expect(json.configs.piqa.validation_split).toBe("validation");
    expect(json.configs.piqa.test_split).toBeUndefined();
  });

  it("reports perplexity on a held-out shard split and refuses another tokenizer's shards", async () => {
    const shardDir = join(root, "shards");
    mkdirSync(shardDir);
    const blockSize = 65;
    const writer = new ShardWriter({
      dir: shardDir,
      prefix: "validation_x",
      blockSize,
      chunkTokens: 2 * blockSize,
    });
    const lcg = { s: 11 };
    const next = () => {
      lcg.s = (lcg.s * 48271) % 2147483647;
      return lcg.s % 32000;
    };
    await writer.add(Array.from({ length: 3 * blockSize }, next));
    const written = await writer.finish();
    const tok = await LlamaTokenizer.load();
    const manifest = (identity: object) =>
      validationManifest(identity, written, blockSize, 2 * blockSize);
    writeFileSync(
      join(shardDir, "manifest.json"),
      JSON.stringify(manifest(tokenizerIdentity(tok))),
    );
    const out = join(root, "ppl");
    const code = await main([
      "--checkpoint",
      ckpt,
      "--tasks",
      "none",
      "--perplexity",
      shardDir,
      "--perplexity-blocks",
      "2",
      "--device",
      "cpu",
      "--output",
      out,
    ]);
    expect(code).toBe(0);
    const p = JSON.parse(readFileSync(join(out, "results.json"), "utf8")).tinyllama_ts.perplexity;
    expect(p).toMatchObject({
      split: "validation",
      blocks: 2,
      tokens: 2 * (blockSize - 1),
      blocksAvailable: 3,
    });
    // A random model over 32000 tokens is near-uniform: perplexity of the order of the vocabulary.
    expect(p.perplexity).toBeGreaterThan(1000);
    expect(p.loss).toBeCloseTo(Math.log(p.perplexity), 9);
    writeFileSync(
      join(shardDir, "manifest.json"),
      JSON.stringify(manifest({ name: "other", vocabSize: 32000, eosId: 2, hash: "0".repeat(64) })),
    );
    await expect(
      main([
        "--checkpoint",
        ckpt,
        "--tasks",
        "none",
        "--perplexity",
        shardDir,
        "--device",
        "cpu",
        "--output",
        out,
      ]),
    ).rejects.toThrow(/tokenizer/i);
  });

  it("checks the perplexity shards before scoring any zero-shot task", async () => {
    // blocks of 65 tokens, made with another tokenizer or longer than --max-length: refused
    // before a window is scored, not after the tasks (whose results the error would lose)
    const shardDir = join(root, "ppl-early");
    mkdirSync(shardDir);
    const blockSize = 65;
    const writer = new ShardWriter({
      dir: shardDir,
      prefix: "validation_x",
      blockSize,
      chunkTokens: blockSize,
    });
    await writer.add(Array.from({ length: blockSize }, (_, i) => 100 + i));
    const written = await writer.finish();
    const tok = await LlamaTokenizer.load();
    const writeManifest = (identity: object) =>
      writeFileSync(
        join(shardDir, "manifest.json"),
        JSON.stringify(validationManifest(identity, written, blockSize, blockSize)),
      );
    const out = join(root, "ppl-early-out");
    const args = ["--checkpoint", ckpt, "--tasks", "piqa", "--device", "cpu", "--output", out];
    const scored = vi.spyOn(LlamaTokenScorer.prototype, "scoreWindows");
    try {
      writeManifest({ name: "other", vocabSize: 32000, eosId: 2, hash: "0".repeat(64) });
      await expect(main([...args, "--perplexity", shardDir])).rejects.toThrow(/tokenizer "other"/);
      expect(scored).not.toHaveBeenCalled();
      writeManifest(tokenizerIdentity(tok));
      await expect(main([...args, "--perplexity", shardDir, "--max-length", "32"])).rejects.toThrow(
        /blocks of 65 tokens need a context of 64; the model has 32/,
      );
      expect(scored).not.toHaveBeenCalled();
      await expect(
        main([...args, "--perplexity", shardDir, "--perplexity-split", "test"]),
      ).rejects.toThrow(/no split "test"/);
      expect(scored).not.toHaveBeenCalled();
      expect(existsSync(out)).toBe(false);
    } finally {
      scored.mockRestore();
    }
    // a missing shard directory fails before a checkpoint is even looked for
    const cwd = process.cwd();
    const empty = join(root, "empty-ppl");
    mkdirSync(empty);
    process.chdir(empty);
    try {
      await expect(
        main(["--tasks", "piqa", "--perplexity", join(root, "no-such-shards")]),
      ).rejects.toThrow(/no-such-shards.*no manifest/);
    } finally {
      process.chdir(cwd);
    }
  });

  it("loads with another compute dtype (bf16 on the CPU backend) and scores close to f32", async () => {
    const f32 = await loadCheckpoint(ckpt, { device: "cpu" });
    const bf16 = await loadCheckpoint(ckpt, { device: "cpu", dtype: "bf16" });
    try {
      expect(bf16.scorer.description).toContain("bf16");
      const w = [{ tokens: Int32Array.from([1, 450, 4996, 17354, 1701]), scoreFrom: 2 }];
      const [a] = await f32.scorer.scoreWindows(w);
      const [b] = await bf16.scorer.scoreWindows(w);
      for (const [j, lp] of a!.logprobs.entries())
        expect(Math.abs(lp - b!.logprobs[j]!)).toBeLessThan(0.2);
    } finally {
      f32.dispose();
      bf16.dispose();
    }
  });

  it("frees the model when the scorer cannot be made (maxLength past the context)", async () => {
    const probe = await LlamaModel.load(ckpt, { device: "cpu" });
    const k = probe.backend;
    probe.dispose();
    const before = k.stats();
    await expect(loadCheckpoint(ckpt, { device: "cpu", maxLength: 4096 })).rejects.toThrow(
      /maxLength 4096 exceeds the model's context of 2048/,
    );
    expect(k.stats().liveTensors).toBe(before.liveTensors);
    expect(k.stats().liveBytes).toBe(before.liveBytes);
  });

  it("rejects bad flags before loading anything", async () => {
    await expect(main(["--tasks", "nope"])).rejects.toThrow(/unknown task "nope"/);
    await expect(main(["--limit", "0"])).rejects.toThrow(/--limit must be a positive integer/);
    await expect(main(["--pad-multiple", "0"])).rejects.toThrow(
      /--pad-multiple must be a positive integer/,
    );
    await expect(main(["--harness", "0.5"])).rejects.toThrow(/--harness must be one of/);
    await expect(main(["--device", "tpu"])).rejects.toThrow(/--device must be cpu, cuda or auto/);
    await expect(main(["--dtype", "f16"])).rejects.toThrow(/--dtype must be f32 or bf16/);
    await expect(main(["--bogus"])).rejects.toThrow(/Unknown option '--bogus'/);
    for (const v of ["0x10", "1e1", " 3 ", "2.0"]) {
      await expect(main(["--limit", v])).rejects.toThrow(/--limit must be a positive integer/);
    }
    await expect(main(["--hub-revision", "main"])).rejects.toThrow(/--hub-revision needs --hub/);
    await expect(main(["--hub", "--data-dir", root])).rejects.toThrow(
      /--hub and --data-dir together/,
    );
    await expect(main(["--perplexity-split", "test"])).rejects.toThrow(
      /--perplexity-split needs --perplexity/,
    );
    await expect(main(["--perplexity-blocks", "3"])).rejects.toThrow(
      /--perplexity-blocks needs --perplexity/,
    );
    await expect(main(["--data-dir", join(root, "missing"), "--tasks", "piqa"])).rejects.toThrow(
      /piqa: no data under/,
    );
  });

  it("with no checkpoint under ./runs says how to get one", async () => {
    const cwd = process.cwd();
    const empty = join(root, "empty");
    mkdirSync(empty);
    process.chdir(empty);
    try {
      await expect(main(["--tasks", "piqa"])).rejects.toThrow(/no checkpoint under .*runs/);
    } finally {
      process.chdir(cwd);
    }
    expect(existsSync(join(empty, "runs"))).toBe(false);
  });
});

/** The manifest.json of a one-split (validation) shard set these tests write with ShardWriter. */
function validationManifest(
  identity: object,
  written: Awaited<ReturnType<ShardWriter["finish"]>>,
  blockSize: number,
  chunkTokens: number,
) {
  return {
    format: "tinyllama-shards/1",
    source: "test",
    blockSize,
    chunkTokens,
    dtype: "uint16",
    tokenizer: identity,
    eosAppended: true,
    splits: {
      validation: {
        files: written.files,
        documents: 1,
        tokens: written.tokens,
        blocks: written.blocks,
        droppedTailTokens: 0,
      },
    },
    stats: {},
    config: null,
    createdAt: new Date(0).toISOString(),
  };
}
