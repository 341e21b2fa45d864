import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MetricsWriter, progressLine, readMetrics } from "./metrics.js";
import { collectRunMetrics, plotRun } from "./plot.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "plot-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function record(stage: string, step: number, loss: number) {
  return {
    kind: "train" as const,
    stage,
    step,
    tokens: step * 100,
    loss,
    lr: 1e-3,
    gradNorm: 1,
    tokensPerSec: 500,
    stepSeconds: 0.2,
    mfu: null,
    memoryBytes: 1,
    skipped: false,
    time: "",
  };
}

describe("metrics and plot", () => {
  it("writes NaN visibly, survives a torn last line, and plots every stage in token order", () => {
    const a = new MetricsWriter(join(dir, "basic", "metrics.jsonl"));
    a.write(record("basic", 1, 10));
    a.write(record("basic", 2, Number.NaN));
    a.write({
      kind: "val",
      stage: "basic",
      step: 2,
      tokens: 200,
      valLoss: 9,
      valTokens: 10,
      time: "",
    });
    const b = new MetricsWriter(join(dir, "cooldown-base", "metrics.jsonl"));
    b.write(record("cooldown-base", 3, 8));
    appendFileSync(b.path, '{"kind":"train","st'); // a crash mid-line
    expect(readFileSync(a.path, "utf8")).toContain('"loss":"NaN"');
    expect(readMetrics(b.path)).toHaveLength(1);
    const stages = collectRunMetrics(dir);
    expect(stages.map((s) => s.stage)).toEqual(["basic", "cooldown-base"]);
    const svg = readFileSync(plotRun(dir), "utf8");
    expect(svg).toContain("validation loss");
    expect(svg).toContain("cooldown-base");
    expect(svg.match(/<polyline/g)?.length).toBeGreaterThanOrEqual(3);
  });

  it("explains a missing or empty run directory", () => {
    expect(() => collectRunMetrics(join(dir, "nope"))).toThrow(/does not exist/);
    mkdirSync(join(dir, "empty"));
    expect(() => collectRunMetrics(join(dir, "empty"))).toThrow(/no metrics.jsonl .* train first/);
  });

  it("progress line shows loss, lr, rate and ETA", () => {
    const line = progressLine({
      stage: "basic",
      step: 10,
      stageTokens: 5000,
      stageBudget: 10000,
      loss: 7.5,
      lr: 2e-4,
      gradNorm: 0.5,
      tokensPerSec: 500,
      mfu: 0.45,
      skipped: false,
    });
    expect(line).toBe(
      "[basic] step 10 | 5.0k/10.0k tokens (50.0%) | loss 7.5000 | lr 2.00e-4 | grad norm 0.500 | 500 tok/s | MFU 45.0% | ETA 10s",
    );
  });
});
