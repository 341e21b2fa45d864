import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { StageReport } from "../mixture/index.js";
import { runMixtureCli } from "./mixture.js";

const dir = mkdtempSync(join(tmpdir(), "mixture-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = runMixtureCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("mixture CLI", () => {
  it("prints a preset's schedule, samples the stage and writes the SVG plot and JSON report", () => {
    const out = join(dir, "plots");
    const r = run("v1.1-continual-math-code", "--scale", "1e-4", "--out", out, "--windows", "50");
    expect(r.code).toBe(0);
    expect(r.out).toContain("v1.1-continual-math-code: 35M tokens");
    expect(r.out).toMatch(/600K\s+10\.000%\s+75\.000%\s+15\.000%/); // the ramp ends at 6B * 1e-4
    expect(r.out).toMatch(/starcoder\s+14\.8714%\s+14\.86\d\d%/); // within 1 block of 17,089
    const svg = readFileSync(join(out, "v1.1-continual-math-code-low-discrepancy.svg"), "utf8");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    for (const s of ["proof-pile-2", "slimpajama", "starcoder"])
      expect(svg).toContain(`${s} scheduled`);
    const report = JSON.parse(
      readFileSync(join(out, "v1.1-continual-math-code-low-discrepancy.json"), "utf8"),
    ) as StageReport;
    expect(report.blocks).toBe(Math.floor(35e6 / 2048));
    expect(report.windows.length).toBeGreaterThanOrEqual(50);
    for (const dev of report.maxAbsDeviation) expect(dev).toBeLessThan(1);
  });

  it("reads a custom JSON schedule and runs random mode", () => {
    const file = join(dir, "my-mix.json");
    writeFileSync(
      file,
      JSON.stringify({
        totalTokens: 2048 * 5000,
        points: [{ tokens: 0, weights: { web: 2, code: 1 } }],
      }),
    );
    const r = run(file, "--mode", "random", "--seed", "7", "--out", dir);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/web\s+66\.6667%/);
    expect(existsSync(join(dir, "my-mix-random.svg"))).toBe(true);
  });

  it("--print-only prints the schedule and writes nothing", () => {
    const out = join(dir, "nothing");
    const r = run("v1.0", "--print-only", "--out", out);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/stage average\s+69\.358%\s+30\.642%/);
    expect(existsSync(out)).toBe(false);
  });

  it("explains every bad invocation", () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{ not json");
    const invalid = join(dir, "invalid.json");
    writeFileSync(
      invalid,
      JSON.stringify({ totalTokens: 10, points: [{ tokens: 0, weights: { a: -1 } }] }),
    );
    const cases: [string[], number, RegExp][] = [
      [[], 2, /missing the preset name/],
      [["v2.0"], 2, /"v2.0" is neither a preset \(v1.0, /],
      [["v1.0", "--mode", "greedy"], 2, /--mode must be one of low-discrepancy, random/],
      [["v1.0", "--scale", "0"], 2, /--scale must be a positive number/],
      [["v1.0", "--scale", "2"], 2, /--scale must be at most 1/],
      [["v1.0", "--block-tokens", "1.5"], 2, /--block-tokens must be a positive integer/],
      [["v1.0", "--frobnicate"], 2, /Unknown option '--frobnicate'/],
      [["v1.0", "extra"], 2, /unexpected arguments: extra/],
      [[join(dir, "missing.json")], 2, /cannot read schedule file/],
      [[bad], 2, /is not valid JSON/],
      [[invalid], 1, /invalid mixture schedule: points\[0\]\.weights\.a/],
      [["v1.0", "--scale", "1e-12"], 1, /holds 1 blocks|need at least 1/],
    ];
    for (const [argv, code, message] of cases) {
      const r = run(...argv);
      expect(r.code, argv.join(" ")).toBe(code);
      expect(r.err, argv.join(" ")).toMatch(message);
    }
  });

  it("a broken schedule file's error names the file and the field", () => {
    const file = join(dir, "negative.json");
    writeFileSync(
      file,
      JSON.stringify({ totalTokens: 10, points: [{ tokens: 0, weights: { a: 1, b: -1 } }] }),
    );
    const r = run(file);
    expect(r.code).toBe(1);
    expect(r.err).toContain(file);
    expect(r.err).toMatch(/points\[0\]\.weights\.b must be a finite number >= 0, got -1/);
  });

  it("an --out that cannot be created fails before sampling, naming the directory", () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    const r = run("v1.0", "--scale", "1e-6", "--out", join(file, "sub"));
    expect(r.code).toBe(1);
    expect(r.err).toContain(`cannot create --out directory ${join(file, "sub")}`);
    expect(r.out).not.toContain("sampling");
  });

  it("--windows far beyond the stage's blocks still plots (one window per block)", () => {
    const file = join(dir, "many-windows.json");
    writeFileSync(
      file,
      JSON.stringify({
        totalTokens: 2048 * 60_000,
        points: [{ tokens: 0, weights: { a: 1, b: 1 } }],
      }),
    );
    const r = run(file, "--windows", "1000000000000", "--out", dir);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const report = JSON.parse(
      readFileSync(join(dir, "many-windows-low-discrepancy.json"), "utf8"),
    ) as StageReport;
    expect(report.windows.length).toBe(60_000);
  }, 20_000);

  it("an unknown option is one clean line (no parseArgs advice with an unclosed quote)", () => {
    const r = run("v1.0", "--bogus");
    expect(r.code).toBe(2);
    expect(r.err.split("\n")[0]).toBe("mixture: Unknown option '--bogus'");
    expect(r.err).toContain("usage: mixture <preset | schedule.json>");
    expect(r.err).not.toContain("as in");
  });

  it("--help prints the usage, also after pnpm's `--`", () => {
    for (const argv of [["--help"], ["--", "--help"]]) {
      const r = run(...argv);
      expect(r.code).toBe(0);
      expect(r.out).toContain("usage: mixture <preset | schedule.json>");
    }
  });
});
