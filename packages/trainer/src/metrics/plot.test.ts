import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isNoSpaceError } from "../checkpoint/store.js";
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
  it("writes NaN as null, survives a torn last line, and plots every stage in token order", () => {
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
    expect(readFileSync(a.path, "utf8")).toContain('"loss":null');
    expect(readMetrics(b.path)).toHaveLength(1);
    const stages = collectRunMetrics(dir);
    expect(stages.map((s) => s.stage)).toEqual(["basic", "cooldown-base"]);
    const svg = readFileSync(plotRun(dir), "utf8");
    expect(svg).toContain("validation loss");
    expect(svg).toContain("cooldown-base");
    expect(svg.match(/<polyline/g)?.length).toBeGreaterThanOrEqual(3);
  });

  // /dev/full answers every write with ENOSPC (Linux): the error must name the file and step and
  // keep its code, so the CLI exits with EXIT_DISK_FULL and the launcher reports a full disk.
  it.runIf(existsSync("/dev/full"))(
    "a full disk while appending names metrics.jsonl and keeps ENOSPC",
    () => {
      const w = new MetricsWriter("/dev/full");
      let err: unknown;
      try {
        w.write(record("basic", 7, 3));
      } catch (e) {
        err = e;
      }
      expect(isNoSpaceError(err)).toBe(true);
      expect((err as Error).message).toMatch(
        /^\/dev\/full: the disk is full \(ENOSPC\) while appending step 7's/,
      );
      expect((err as Error).message).toContain("rerun the same command");
    },
  );

  it("plots a run of a million logged steps (no spread-argument limit) into a small SVG", () => {
    const path = join(dir, "v1.0", "metrics.jsonl");
    mkdirSync(join(dir, "v1.0"), { recursive: true });
    const lines: string[] = [];
    for (let step = 1; step <= 1_000_000; step++) {
      lines.push(
        JSON.stringify(record("v1.0", step, 2 + 8 / Math.sqrt(step) + (step === 500_000 ? 20 : 0))),
      );
      if (lines.length === 100_000) {
        appendFileSync(path, `${lines.join("\n")}\n`);
        lines.length = 0;
      }
    }
    const svg = readFileSync(plotRun(dir), "utf8");
    expect(svg.length).toBeLessThan(1_000_000);
    const loss = /<polyline fill="none" stroke="#1f77b4"[^>]* points="([^"]+)"/.exec(svg)![1]!;
    const ys = loss.split(" ").map((p) => Number(p.split(",")[1]));
    expect(ys.length).toBeLessThan(4 * 900);
    // the one-step spike at step 500,000 survives the thinning: the highest loss is the top point
    expect(Math.min(...ys)).toBeLessThan(75);
  }, 60_000);

  it("draws each stage's line on its own and stacks labels of stages that start together", () => {
    for (const [stage, from, to, loss] of [
      ["basic", 1, 10, 9],
      ["continual-base", 11, 20, 7],
      ["continual-math-code", 11, 20, 6],
    ] as const) {
      const w = new MetricsWriter(join(dir, stage, "metrics.jsonl"));
      for (let step = from; step <= to; step++) w.write(record(stage, step, loss));
    }
    const svg = readFileSync(plotRun(dir), "utf8");
    const lossLines = [
      ...svg.matchAll(/<polyline fill="none" stroke="#1f77b4"[^>]* points="([^"]+)"/g),
    ];
    // basic + continual-base run on as one line; continual-math-code restarts at step 11's tokens
    expect(lossLines).toHaveLength(2);
    for (const [, pts] of lossLines) {
      const xs = pts!.split(" ").map((p) => Number(p.split(",")[0]));
      for (let i = 1; i < xs.length; i++) expect(xs[i]!).toBeGreaterThanOrEqual(xs[i - 1]!);
    }
    const labelY = (name: string) =>
      Number(new RegExp(`<text x="[\\d.]+" y="([\\d.]+)"[^>]*>${name}<`).exec(svg)![1]);
    expect(labelY("continual-math-code")).not.toBe(labelY("continual-base"));
  });

  it("writes non-finite values as null, which data tools read as missing, and plots them as gaps", () => {
    const w = new MetricsWriter(join(dir, "v1.0", "metrics.jsonl"));
    w.write(record("v1.0", 1, 10));
    w.write({
      ...record("v1.0", 2, Number.NaN),
      gradNorm: Number.POSITIVE_INFINITY,
      skipped: true,
    });
    w.write(record("v1.0", 3, 8));
    const rows = readFileSync(w.path, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // a string ("NaN") made polars type the column as strings, or fail past its inference rows
    expect(rows.map((r) => [typeof r.loss, typeof r.gradNorm])).toEqual([
      ["number", "number"],
      ["object", "object"],
      ["number", "number"],
    ]);
    expect(rows[1]).toMatchObject({ loss: null, gradNorm: null, skipped: true });
    // which non-finite value it was stays on the record, outside the numeric columns
    expect(rows[1]!.nonFinite).toEqual({ loss: "NaN", gradNorm: "Infinity" });
    expect(rows[0]!.nonFinite).toBeUndefined();
    const svg = readFileSync(plotRun(dir), "utf8");
    // the loss axis spans the finite losses 8..10: the null is a gap, not a loss of 0
    expect(svg).toMatch(/text-anchor="end">8\.00</);
    expect(svg).not.toMatch(/text-anchor="end">0</);
  });

  it("keeps legends clear of the label of a stage that starts near the right edge", () => {
    // v1.1's cooldown starts at 92.5% of the recipe's tokens
    for (const [stage, from, to] of [
      ["basic", 1, 92],
      ["cooldown-base", 93, 100],
    ] as const) {
      const w = new MetricsWriter(join(dir, stage, "metrics.jsonl"));
      for (let step = from; step <= to; step++) w.write(record(stage, step, 10 - step / 50));
    }
    const svg = readFileSync(plotRun(dir), "utf8");
    const at = (re: RegExp) => [...svg.matchAll(re)].map((m) => [Number(m[1]), Number(m[2])]);
    const boxTops = at(/<rect x="(\d+)" y="(\d+)" width="\d+" height="\d+" fill="none"/g).map(
      ([, y]) => y!,
    );
    const labels = at(/<text x="([\d.]+)" y="([\d.]+)"[^>]*>cooldown-base</g);
    const legends = at(
      /<text x="([\d.]+)" y="([\d.]+)"[^>]*>(?:train loss|validation loss|lr|tokens\/s)</g,
    );
    expect(labels).toHaveLength(3);
    expect(legends).toHaveLength(3); // no validation records: no validation legend
    // Stage labels sit inside the panels' boxes (150 px high); legends outside them, so a label
    // near the right edge and a right-aligned legend never share a line.
    const inBox = (y: number) => boxTops.some((top) => y > top && y < top + 150);
    for (const [, y] of labels) expect(inBox(y!)).toBe(true);
    for (const [, y] of legends) expect(inBox(y!)).toBe(false);
  });

  it("plots one stage directory over its own tokens, labelled with the stage's name", () => {
    const w = new MetricsWriter(join(dir, "cooldown-base", "metrics.jsonl"));
    for (let step = 30; step <= 40; step++) w.write(record("cooldown-base", step, 5));
    const svg = readFileSync(plotRun(join(dir, "cooldown-base")), "utf8");
    const xTicks = [...svg.matchAll(/font-size="10" text-anchor="middle">([^<]+)</g)].map(
      (m) => m[1],
    );
    // the axis starts at the stage's first tokens (3.0k), not at 0 with the data squeezed right
    expect(xTicks.slice(0, 6)).toEqual(["3.0k", "3.2k", "3.4k", "3.6k", "3.8k", "4.0k"]);
    expect(svg).toMatch(/fill="#666">cooldown-base</);
    expect(svg).not.toContain(`>${join(dir, "cooldown-base")}<`);
  });

  it("explains a missing or empty run directory", () => {
    expect(() => collectRunMetrics(join(dir, "v1.0", "metrics.jsonl"))).toThrow(/does not exist/);
    new MetricsWriter(join(dir, "v1.0", "metrics.jsonl")).write(record("v1.0", 1, 5));
    // the metrics file itself, not a bare ENOTDIR from scandir
    expect(() => collectRunMetrics(join(dir, "v1.0", "metrics.jsonl"))).toThrow(
      /metrics\.jsonl is a file: give its run directory, or the stage directory/,
    );
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
