/**
 * Stage reports: run a sampler over a whole stage and measure what it delivered against what
 * the schedule asked for, per window of the stage and for every prefix. Pure computation (no
 * I/O), so the same numbers back the CLI's table and plot, the tests and the benchmark.
 */
import { type MixtureMode, MixtureSampler } from "./sampler.js";
import { CompiledSchedule, type MixtureSchedule } from "./schedule.js";

export interface StageReportOptions {
  schedule: MixtureSchedule | string;
  seed?: number | string;
  blockTokens?: number;
  mode?: MixtureMode;
  /** Number of equal windows the stage is cut into for the share curves (default 200). */
  windows?: number;
  /** Blocks to run; default: the stage's whole budget, floor(totalTokens / blockTokens). */
  blocks?: number;
  /** Called about every `progressEvery` blocks (default 2^22) with blocks done and total. */
  onProgress?: (done: number, total: number) => void;
  progressEvery?: number;
}

export interface ReportWindow {
  startTokens: number;
  endTokens: number;
  /** Scheduled share per source over the window (the integral of the weight / width). */
  scheduled: number[];
  /** Realised share per source over the window's blocks. */
  realised: number[];
  /** Realised minus expected block count per source at the window's end (cumulative). */
  deviation: number[];
}

export interface StageReport {
  name: string;
  mode: MixtureMode;
  seed: number | string;
  blockTokens: number;
  blocks: number;
  tokens: number;
  sources: string[];
  windows: ReportWindow[];
  /** Over the whole run: realised share, expected share (integral), realised blocks. */
  realisedShare: number[];
  expectedShare: number[];
  realisedBlocks: number[];
  /** Largest |realised - expected| block count per source over every prefix of the run. */
  maxAbsDeviation: number[];
  /** Wall time of the sampling loop and its rate. */
  seconds: number;
  blocksPerSecond: number;
}

export function simulateStage(options: StageReportOptions): StageReport {
  const sampler = new MixtureSampler({
    schedule: options.schedule,
    seed: options.seed ?? 0,
    ...(options.blockTokens !== undefined ? { blockTokens: options.blockTokens } : {}),
    ...(options.mode !== undefined ? { mode: options.mode } : {}),
  });
  const schedule = sampler.compiled.schedule;
  const B = sampler.blockTokens;
  const compiled = new CompiledSchedule(schedule);
  const blocks = options.blocks ?? Math.floor(schedule.totalTokens / B);
  if (!Number.isSafeInteger(blocks) || blocks < 1) {
    throw new RangeError(
      `simulateStage: the stage holds ${blocks} blocks of ${B} tokens; need at least 1 (lower blockTokens or raise the budget)`,
    );
  }
  const boundaries = windowBoundaries(compiled, B, blocks, options.windows ?? 200);
  const K = sampler.sources.length;
  const index = new Map(sampler.sources.map((s, i) => [s, i]));
  const counts = new Float64Array(K);
  const windowStartCounts = new Float64Array(K);
  const maxAbs = new Float64Array(K);
  const windows: ReportWindow[] = [];
  const progressEvery = options.progressEvery ?? 2 ** 22;
  let segment = 0;
  let windowStart = 0;
  let nextWindow = 0;
  let boundary = boundaries[0]!;
  const started = Date.now();
  for (let n = 1; n <= blocks; n++) {
    counts[index.get(sampler.next())!]!++;
    const t = n * B;
    while (t >= compiled.segmentEnd(segment)) segment++;
    for (let s = 0; s < K; s++) {
      const dev = Math.abs(counts[s]! - compiled.integralIn(segment, s, t) / B);
      if (dev > maxAbs[s]!) maxAbs[s] = dev;
    }
    if (n === boundary) {
      const a = compiled.integralAt(windowStart * B);
      const b = compiled.integralAt(t);
      const width = (n - windowStart) * B;
      windows.push({
        startTokens: windowStart * B,
        endTokens: t,
        scheduled: Array.from({ length: K }, (_, s) => (b[s]! - a[s]!) / width),
        realised: Array.from(
          { length: K },
          (_, s) => (counts[s]! - windowStartCounts[s]!) / (n - windowStart),
        ),
        deviation: Array.from({ length: K }, (_, s) => counts[s]! - b[s]! / B),
      });
      windowStartCounts.set(counts);
      windowStart = n;
      nextWindow++;
      boundary = boundaries[nextWindow] ?? -1;
    }
    if (options.onProgress && n % progressEvery === 0) options.onProgress(n, blocks);
  }
  const seconds = (Date.now() - started) / 1000;
  const expected = compiled.integralAt(blocks * B);
  return {
    name: schedule.name ?? "custom",
    mode: sampler.mode,
    seed: sampler.seed,
    blockTokens: B,
    blocks,
    tokens: blocks * B,
    sources: [...sampler.sources],
    windows,
    realisedShare: Array.from(counts, (c) => c / blocks),
    expectedShare: Array.from(expected, (e) => e / (blocks * B)),
    realisedBlocks: Array.from(counts),
    maxAbsDeviation: Array.from(maxAbs),
    seconds,
    blocksPerSecond: seconds > 0 ? blocks / seconds : Number.POSITIVE_INFINITY,
  };
}

/**
 * Window ends (block counts, increasing, last = blocks): `windows` equal windows, plus 40 more
 * over every segment where the weights change, so a 6B-token ramp in a 350B-token stage is
 * drawn with as much detail as the rest.
 */
function windowBoundaries(
  compiled: CompiledSchedule,
  B: number,
  blocks: number,
  windows: number,
): number[] {
  if (!Number.isSafeInteger(windows) || windows < 1) {
    throw new RangeError(`simulateStage: windows must be a positive integer, got ${windows}`);
  }
  const ends = new Set<number>();
  // More windows than blocks adds nothing (every block already ends one): cap the loop.
  const n = Math.min(windows, blocks);
  for (let i = 1; i <= n; i++) ends.add(Math.round((blocks * i) / n));
  for (let k = 0; k + 1 < compiled.knots; k++) {
    const a = compiled.weightsAt(compiled.segmentStart(k));
    const b = compiled.weightsAt(compiled.segmentEnd(k));
    if (a.every((v, s) => v === b[s])) continue;
    const from = compiled.segmentStart(k) / B;
    const to = Math.min(blocks, compiled.segmentEnd(k) / B);
    for (let i = 1; i <= 40 && from < blocks; i++)
      ends.add(Math.round(from + ((to - from) * i) / 40));
  }
  return [...ends].filter((e) => e >= 1 && e <= blocks).sort((x, y) => x - y);
}

/**
 * A block deviation for display: below 10, truncated (not rounded) to 4 decimals, so a value
 * under the 1-block bound never prints as "1.000"; above, a whole number with separators.
 */
export function formatDeviation(blocks: number): string {
  if (blocks < 10) return (Math.floor(blocks * 1e4) / 1e4).toFixed(4);
  return Math.round(blocks).toLocaleString("en-US");
}

/** "3T", "350B", "6B", "1.5M": token counts the way the paper writes them. */
export function formatTokens(tokens: number): string {
  const units: [number, string][] = [
    [1e12, "T"],
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "K"],
  ];
  for (const [size, suffix] of units) {
    if (Math.abs(tokens) >= size) return `${+(tokens / size).toPrecision(4)}${suffix}`;
  }
  return `${+tokens.toPrecision(4)}`;
}

/** A plain-text table of a schedule: its knots and the average share over the stage. */
export function describeSchedule(schedule: MixtureSchedule): string {
  const c = new CompiledSchedule(schedule);
  const names = c.sources;
  const width = Math.max(12, ...names.map((n) => n.length + 2));
  const pct = (v: number) => `${(v * 100).toFixed(3)}%`.padStart(width);
  const lines: string[] = [];
  lines.push(`${schedule.name ?? "custom schedule"}: ${formatTokens(schedule.totalTokens)} tokens`);
  if (schedule.description) lines.push(schedule.description);
  lines.push(`${"tokens".padEnd(18)}${names.map((n) => n.padStart(width)).join("")}`);
  const positions = new Set<number>([
    0,
    ...schedule.points.map((p) => p.tokens),
    schedule.totalTokens,
  ]);
  for (const x of [...positions].sort((a, b) => a - b)) {
    const w = c.weightsAt(x);
    lines.push(`${formatTokens(x).padEnd(18)}${Array.from(w, pct).join("")}`);
  }
  const integral = c.integralAt(schedule.totalTokens);
  lines.push(
    `${"stage average".padEnd(18)}${Array.from(integral, (v) => pct(v / schedule.totalTokens)).join("")}`,
  );
  lines.push("Weights are linear between the listed positions and hold after the last one.");
  return lines.join("\n");
}
