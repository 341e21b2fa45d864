// The LlamaTextGenerator on a tiny random checkpoint (the trainer's 1-layer "tinyllama-test"),
// and the problem-solving CLI end to end on the fixtures.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaTokenizer } from "@tinyllama/tokenizer";
import * as trainer from "@tinyllama/trainer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { problemSolvingMain } from "./cli.js";
import { LlamaTextGenerator } from "./llama-generator.js";

let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "eval-ps-"));
  const config = trainer.MODEL_CONFIGS["tinyllama-test"]!;
  let seed = 11;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  trainer.writeHfModel(root, config, (name) => {
    const spec = trainer.parameterSpecs(config).find((p) => p.name === name)!;
    const n = spec.shape.reduce((a, b) => a * b, 1);
    return Float32Array.from({ length: n }, () => (name.includes("norm") ? 1 : rnd() * 0.4));
  });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("LlamaTextGenerator", () => {
  it("generates with BOS, decodes the new tokens alone, honours settled", async () => {
    const model = await trainer.LlamaModel.load(root, { device: "cpu" });
    const tok = await LlamaTokenizer.load();
    const gen = new LlamaTextGenerator(trainer, model, tok, { batchSize: 2 });
    const prompts = ["Question: 2 + 2 =\nAnswer:", "The capital of France is"];
    expect(gen.countTokens(prompts[0]!)).toBe(
      tok.encode(prompts[0]!, { bos: true, eos: false }).length,
    );
    const out = await gen.generate(prompts, { maxNewTokens: 6 });
    const direct = trainer.generate(
      model,
      prompts.map((p) => tok.encode(p, { bos: true, eos: false })),
      { maxNewTokens: 6, eosTokenId: tok.eosId },
    );
    expect(out).toEqual(
      direct.map((g) => tok.decode(g.finishReason === "eos" ? g.tokens.slice(0, -1) : g.tokens)),
    );
    const short = await gen.generate(prompts, {
      maxNewTokens: 6,
      settled: (_i, text) => text.length > 0,
    });
    for (const [i, s] of short.entries()) expect(out[i]!.startsWith(s)).toBe(true);
    model.dispose();
  });

  it("scores choices by the next-token logits of their first token (MMLU loglik mode)", async () => {
    const model = await trainer.LlamaModel.load(root, { device: "cpu" });
    const tok = await LlamaTokenizer.load();
    const gen = new LlamaTextGenerator(trainer, model, tok, { batchSize: 2 });
    const prompts = ["Q: 1+1?\nAnswer:", "Pick one.\nAnswer:"];
    const rows = await gen.choiceLogits(prompts, [" A", " B"]);
    const V = model.config.vocabSize;
    for (const [i, p] of prompts.entries()) {
      const ctx = tok.encode(p, { bos: true, eos: false });
      const full = model.logits(Int32Array.from(ctx), 1, ctx.length).subarray((ctx.length - 1) * V);
      const a = tok.encode(`${p} A`, { bos: true, eos: false })[ctx.length]!;
      const b = tok.encode(`${p} B`, { bos: true, eos: false })[ctx.length]!;
      expect(tok.idToPiece(a)).toBe("\u2581A");
      expect(rows[i]![0]).toBeCloseTo(full[a]!, 4);
      expect(rows[i]![1]).toBeCloseTo(full[b]!, 4);
    }
    model.dispose();
  });

  it("runs the CLI on the fixtures and writes results in the eval JSON shape", async () => {
    const outDir = join(root, "out");
    const log = console.log;
    const lines: string[] = [];
    console.log = (s: string) => lines.push(String(s));
    try {
      await problemSolvingMain([
        "--checkpoint",
        root,
        "--device",
        "cpu",
        "--tasks",
        "mmlu,drop",
        "--output",
        outDir,
        "--log-samples",
      ]);
    } finally {
      console.log = log;
    }
    const json = JSON.parse(readFileSync(join(outDir, "results.json"), "utf8"));
    expect(Object.keys(json.results)).toEqual([
      "mmlu",
      "mmlu_abstract_algebra",
      "mmlu_high_school_geography",
      "drop",
    ]);
    expect(json["n-shot"].mmlu).toBe(5);
    expect(json.tinyllama_ts.data).toMatch(/fixtures/);
    expect(
      readFileSync(join(outDir, "samples_drop.jsonl"), "utf8").trim().split("\n"),
    ).toHaveLength(3);
    expect(lines.join("\n")).toMatch(/Table 4 view/);
    await expect(
      problemSolvingMain(["--checkpoint", root, "--tasks", "mmlu,gsm8k"]),
    ).rejects.toThrow(/unknown benchmark "gsm8k"/);
  });
});
