// The main job across packages, through the same built CLIs a user runs: prepare the bundled
// sample -> train a tiny model on CPU -> evaluate the checkpoint. Each step reads only what the
// previous one wrote (shards + manifest, checkpoint dir), so a break at any seam fails here.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const work = mkdtempSync(join(tmpdir(), "main-job-"));
const data = join(work, "data");
const runs = join(work, "runs");

function cli(script: string, args: string[]) {
  const r = spawnSync(process.execPath, [join(root, script), ...args], {
    cwd: work,
    encoding: "utf8",
    timeout: 240_000,
  });
  expect(r.status, `${script} ${args.join(" ")}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout + r.stderr;
}

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("main job: prepare -> train -> eval", () => {
  it("prepares shards of all four corpora with a manifest each", () => {
    cli("packages/data/dist/cli/prepare.js", ["--output", data, "--workers", "1"]);
    for (const source of ["slimpajama", "starcoder", "proof-pile-2", "skypile"]) {
      const manifest = JSON.parse(readFileSync(join(data, source, "manifest.json"), "utf8"));
      expect(manifest.tokenizer.vocabSize).toBe(32000);
      expect(manifest.splits.train.files.length).toBeGreaterThan(0);
    }
  });

  it("trains a tiny model on those shards and writes a transformers-style checkpoint", () => {
    const out = cli("packages/trainer/dist/cli.js", [
      "--device",
      "cpu",
      "--model",
      "tinyllama-test",
      "--data",
      data,
      "--out",
      runs,
      "--max-steps",
      "3",
      "--seq-len",
      "64",
      "--global-batch",
      "4",
      "--micro-batch",
      "2",
    ]);
    expect(out).toMatch(/checkpoint/i);
    const stage = join(runs, "v1.0");
    expect(
      readFileSync(join(stage, "metrics.jsonl"), "utf8").trim().split("\n").length,
    ).toBeGreaterThan(0);
    const checkpoints = readdirSync(join(stage, "checkpoints"));
    expect(checkpoints.length).toBeGreaterThan(0);
    const ckpt = join(stage, "checkpoints", checkpoints.sort().at(-1)!);
    expect(existsSync(join(ckpt, "model.safetensors"))).toBe(true);
    expect(JSON.parse(readFileSync(join(ckpt, "config.json"), "utf8")).model_type).toBe("llama");
  });

  it("evaluates the newest checkpoint and writes harness-shaped results", () => {
    const resultsDir = join(work, "eval");
    cli("packages/eval/dist/cli.js", [
      "--checkpoint",
      join(runs, "v1.0"),
      "--tasks",
      "arc_easy,boolq",
      "--limit",
      "2",
      "--device",
      "cpu",
      "--output",
      resultsDir,
    ]);
    const results = JSON.parse(readFileSync(join(resultsDir, "results.json"), "utf8"));
    expect(Object.keys(results.results).sort()).toEqual(["arc_easy", "boolq"]);
    expect(results.results.boolq["acc,none"]).toBeGreaterThanOrEqual(0);
  });
});
