// The H100 estimate quoted in BENCHMARKS.md, on a run directory built by hand: memory-bound ops
// stretched by the bandwidth ratio (as profiled, and less the cheapest call's per-call cost),
// matmuls and attention kept, and a clear error for every bad input.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../tools/bench/train/h100-estimate.mjs", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "h100-estimate-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function estimate(...args: string[]) {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A run dir as run-gpu.sh keeps it: <run>/<stage>/{profile.json,metrics.jsonl}. */
function runDir(name: string): string {
  const stage = join(root, name, "v1.0");
  mkdirSync(stage, { recursive: true });
  const rows = [
    { key: "matmul [32768,2048] [2048,2048]", calls: 10, ms: 100 },
    { key: "attentionForward [16,2048,32,64]", calls: 2, ms: 20 },
    { key: "attentionBackward [16,2048,32,64]", calls: 2, ms: 40 },
    { key: "fill [2048]", calls: 4, ms: 0.08 }, // 0.02 ms per call: the per-call cost
    { key: "rmsnormBackward [32768,2048]", calls: 10, ms: 50 },
  ];
  writeFileSync(join(stage, "profile.json"), JSON.stringify({ step: 4, seconds: 0.6, rows }));
  // steps 1-2 warm up and step 4 is the profiled one: only 3, 5 and 6 (0.5 s) count
  const steps = [
    [1, 2.0],
    [2, 0.9],
    [3, 0.5],
    [4, 0.6],
    [5, 0.5],
    [6, 0.5],
  ].map(([step, s]) =>
    JSON.stringify({
      kind: "train",
      step,
      stepSeconds: s,
      tokensPerSec: 32768 / (s ?? 1),
      mfu: (0.5 * (32768 / (s ?? 1))) / 65536,
    }),
  );
  writeFileSync(join(stage, "metrics.jsonl"), `${steps.join("\n")}\n{"kind":"eval","step":6}\n`);
  return join(root, name);
}

describe("h100-estimate", () => {
  it("stretches only the memory-bound ops, with and without the per-call cost", () => {
    const dir = runDir("ok");
    const r = estimate(dir);
    expect(r.code).toBe(0);
    // memory-bound: fill 0.08 + rmsnorm 50 = 50.08 ms; less 0.02 ms per call: 0 + 49.8 ms;
    // step 0.5 s + ms * (4.8 / 3.35 - 1): 0.5217 and 0.5216 s for 32,768 tokens
    const row = r.out.split("\n").find((l) => l.startsWith(`| ${dir} |`));
    expect(row).toBe(
      `| ${dir} | 0.500 | 65,536 | 50.0% | 50.1 / 49.8 | 20.0 | 0.522 / 0.522 | 62,813 / 62,827 | 47.9% / 47.9% |`,
    );
  });

  it("takes other bandwidths", () => {
    const dir = runDir("bw");
    const r = estimate(dir, "--to-tbs", "2.4");
    expect(r.code).toBe(0);
    expect(r.out).toContain("| 0.550 / 0.550 | 59,570 / 59,600 | 45.4% / 45.5% |");
  });

  it("fails with a clear message on bad input", () => {
    expect(estimate().err).toMatch(/usage: node tools\/bench\/train\/h100-estimate\.mjs/);
    expect(estimate().code).toBe(2);
    const bad = estimate(runDir("flag"), "--to-tbs", "fast");
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--to-tbs must be positive/);
    const missing = estimate(join(root, "nope"));
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/no such run directory/);
    const empty = join(root, "empty");
    mkdirSync(empty);
    const noProfile = estimate(empty);
    expect(noProfile.code).not.toBe(0);
    expect(noProfile.err).toMatch(
      /no profile\.json here or one level down \(run with --profile-step\)/,
    );
    const dir = runDir("warmup-only");
    writeFileSync(
      join(dir, "v1.0", "metrics.jsonl"),
      `${JSON.stringify({ kind: "train", step: 1, stepSeconds: 1, tokensPerSec: 1, mfu: 0.1 })}\n`,
    );
    const noSteady = estimate(dir);
    expect(noSteady.code).not.toBe(0);
    expect(noSteady.err).toMatch(/no steady training steps/);
  });
});
