// The problem-solving CLI keeps what finished when a later benchmark fails: results.json (and
// the samples) are written after each benchmark, marked partial until all have run.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as trainer from "@tinyllama/trainer";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

// runBenchmark as is, except that HumanEval fails: what a sandbox error in the middle of a run
// (after MMLU ran) does.
vi.mock("./runner.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("./runner.js")>();
  return {
    ...real,
    runBenchmark: async (...args: Parameters<typeof real.runBenchmark>) => {
      if (args[0].name === "humaneval") throw new Error("HumanEval sandbox: broke mid-run");
      return real.runBenchmark(...args);
    },
  };
});
const { problemSolvingMain: main } = await import("./cli.js");

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "eval-ps-partial-"));
  const config = trainer.MODEL_CONFIGS["tinyllama-test"]!;
  mkdirSync(join(root, "ckpt"));
  trainer.writeHfModel(join(root, "ckpt"), config, (name) => {
    const spec = trainer.parameterSpecs(config).find((p) => p.name === name)!;
    const n = spec.shape.reduce((a, b) => a * b, 1);
    return Float32Array.from({ length: n }, (_, i) => (name.includes("norm") ? 1 : (i % 7) / 50));
  });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("pnpm eval:problem-solving results on failure", () => {
  it("keeps the benchmarks that finished, marked partial, when a later one fails", async () => {
    const out = join(root, "out");
    const args = ["--checkpoint", join(root, "ckpt"), "--device", "cpu", "--output", out];
    await expect(
      main([...args, "--tasks", "mmlu,humaneval", "--limit", "1", "--log-samples"]),
    ).rejects.toThrow(/broke mid-run/);
    const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    expect(Object.keys(json.results)).toContain("mmlu");
    expect(json.results.humaneval).toBeUndefined();
    expect(json.tinyllama_ts.partial).toEqual({
      completed: ["mmlu"],
      not_completed: ["humaneval"],
      error: "humaneval: HumanEval sandbox: broke mid-run",
    });
    expect(existsSync(join(out, "samples_mmlu.jsonl"))).toBe(true);
    expect(existsSync(join(out, "results.json.tmp"))).toBe(false);

    // a run that completes is not marked partial
    await main([...args, "--tasks", "mmlu", "--limit", "1"]);
    expect(JSON.parse(readFileSync(join(out, "results.json"), "utf8")).tinyllama_ts.partial).toBe(
      null,
    );
  }, 60_000);
});
