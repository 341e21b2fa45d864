/**
 * `plot <run dir>`: one self-contained SVG with three panels (training and validation loss,
 * learning rate, throughput) over tokens, every stage of the run on one axis, stage
 * boundaries marked. No dependencies: the chart is a few polylines and text.
 */
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { formatTokens } from "../optim/schedule.js";
import { type MetricsRecord, readMetrics, type TrainRecord, type ValRecord } from "./metrics.js";

export interface StageMetrics {
  stage: string;
  records: MetricsRecord[];
}

/** Metrics of a run directory (its stage subdirectories) or of one stage directory. */
export function collectRunMetrics(runDir: string): StageMetrics[] {
  if (!existsSync(runDir)) throw new Error(`run directory ${runDir} does not exist`);
  if (!statSync(runDir).isDirectory()) {
    throw new Error(
      `${runDir} is a file: give its run directory, or the stage directory that holds metrics.jsonl`,
    );
  }
  const own = join(runDir, "metrics.jsonl");
  if (existsSync(own)) {
    const records = readMetrics(own);
    // the stage's name, as in a run directory's plot (not the path given)
    return [{ stage: records[0]?.stage ?? basename(runDir), records }];
  }
  const out: StageMetrics[] = [];
  for (const name of readdirSync(runDir)) {
    const p = join(runDir, name, "metrics.jsonl");
    if (statSync(join(runDir, name)).isDirectory() && existsSync(p)) {
      out.push({ stage: name, records: readMetrics(p) });
    }
  }
  if (out.length === 0) {
    throw new Error(`no metrics.jsonl in ${runDir} or its stage directories; train first`);
  }
  // Stages in training order: by the first token count they logged.
  const first = (s: StageMetrics) => s.records[0]?.tokens ?? 0;
  return out.sort((a, b) => first(a) - first(b));
}

interface Series {
  label: string;
  color: string;
  points: [number, number][];
}

const W = 900;
const PANEL_H = 220;
const M = { left: 70, right: 20, top: 30, bottom: 40 };

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function tickLabel(v: number, range: number): string {
  if (v === 0) return "0";
  if (Math.abs(v) < 0.01 || Math.abs(v) >= 1e6) return v.toExponential(1);
  const digits = range >= 100 ? 0 : range >= 1 ? 2 : 3;
  return v.toFixed(digits);
}

function panel(
  y0: number,
  title: string,
  series: Series[],
  xRange: [number, number],
  boundaries: { x: number; label: string }[],
  logY = false,
): string {
  const pts = series
    .flatMap((s) => s.points)
    .filter(([, y]) => Number.isFinite(y) && (!logY || y > 0));
  const parts: string[] = [];
  const pw = W - M.left - M.right;
  const ph = PANEL_H - M.top - M.bottom;
  parts.push(
    `<text x="${M.left}" y="${y0 + 18}" font-size="14" font-weight="bold">${esc(title)}</text>`,
  );
  parts.push(
    `<rect x="${M.left}" y="${y0 + M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  );
  if (pts.length === 0) {
    parts.push(`<text x="${M.left + 10}" y="${y0 + M.top + 20}" font-size="12">no data</text>`);
    return parts.join("\n");
  }
  const f = (v: number) => (logY ? Math.log10(v) : v);
  // loops, not Math.min(...array): a real run logs over a million steps, beyond the argument
  // count a spread call can take
  let yMin = Number.POSITIVE_INFINITY;
  let yMax = Number.NEGATIVE_INFINITY;
  for (const [, y] of pts) {
    const v = f(y);
    if (v < yMin) yMin = v;
    if (v > yMax) yMax = v;
  }
  if (yMax === yMin) {
    yMax += 0.5;
    yMin -= 0.5;
  }
  const [xMin, xMax0] = xRange;
  const xMax = xMax0 > xMin ? xMax0 : xMin + 1;
  const sx = (x: number) => M.left + ((x - xMin) / (xMax - xMin)) * pw;
  const sy = (y: number) => y0 + M.top + ph - ((f(y) - yMin) / (yMax - yMin)) * ph;
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    const yy = y0 + M.top + ph - (ph * i) / 4;
    const label = logY ? (10 ** v).toExponential(1) : tickLabel(v, yMax - yMin);
    parts.push(
      `<text x="${M.left - 6}" y="${yy + 4}" font-size="10" text-anchor="end">${label}</text>`,
    );
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${yy}" y2="${yy}" stroke="#eee"/>`);
  }
  for (let i = 0; i <= 5; i++) {
    const v = xMin + ((xMax - xMin) * i) / 5;
    parts.push(
      `<text x="${sx(v)}" y="${y0 + PANEL_H - M.bottom + 14}" font-size="10" text-anchor="middle">${formatTokens(v)}</text>`,
    );
  }
  parts.push(
    `<text x="${M.left + pw / 2}" y="${y0 + PANEL_H - 8}" font-size="11" text-anchor="middle">tokens</text>`,
  );
  // Stages that start at the same token count (sibling branches such as continual-base and
  // continual-math-code, both after basic) get their labels one under the other.
  let lastLabel = { x: Number.NEGATIVE_INFINITY, row: 0 };
  for (const b of [...boundaries].sort((p, q) => p.x - q.x)) {
    const x = sx(b.x);
    const row = x - lastLabel.x < 90 ? lastLabel.row + 1 : 0;
    lastLabel = { x, row };
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${y0 + M.top}" y2="${y0 + M.top + ph}" stroke="#bbb" stroke-dasharray="4 3"/>`,
    );
    parts.push(
      `<text x="${x + 3}" y="${y0 + M.top + 12 + 11 * row}" font-size="10" fill="#666">${esc(b.label)}</text>`,
    );
  }
  let legendRight = M.left + pw;
  series.forEach((s) => {
    const good = s.points.filter(([, y]) => Number.isFinite(y) && (!logY || y > 0));
    if (good.length === 0) return;
    for (const run of monotoneRuns(good)) {
      const d = thinToPixels(run, sx, sy)
        .map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`)
        .join(" ");
      parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${d}"/>`);
    }
    // Sparse series (validation) get markers so each measurement is visible.
    if (good.length <= 50) {
      for (const [x, y] of good) {
        parts.push(
          `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`,
        );
      }
    }
    // The legend sits in the header line, right-aligned: inside the plot area it covered the
    // label of a stage that starts near the right edge (v1.1's cooldown starts at 92.5%).
    parts.push(
      `<text x="${legendRight}" y="${y0 + 18}" font-size="11" text-anchor="end" fill="${s.color}">${esc(s.label)}</text>`,
    );
    legendRight -= 7 * s.label.length + 16;
  });
  return parts.join("\n");
}

/**
 * Splits a series where x goes back: the stages of a run are concatenated, and sibling
 * branches (two continual variants after one basic) restart at the same token count; one line
 * through them would run backwards across the plot.
 */
function monotoneRuns(points: Array<[number, number]>): Array<Array<[number, number]>> {
  const runs: Array<Array<[number, number]>> = [];
  let run: Array<[number, number]> = [];
  for (const p of points) {
    const last = run.at(-1);
    if (last && p[0] < last[0]) {
      runs.push(run);
      run = [];
    }
    run.push(p);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/**
 * At most the first, lowest, highest and last point per pixel column, in order: the line looks
 * the same (spikes kept) and the SVG stays small for a run of a million logged steps.
 */
function thinToPixels(
  points: Array<[number, number]>,
  sx: (x: number) => number,
  sy: (y: number) => number,
): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let column: Array<[number, number]> = [];
  const flush = () => {
    if (column.length <= 4) {
      out.push(...column);
    } else {
      let lo = column[0]!;
      let hi = column[0]!;
      for (const p of column) {
        if (p[1] < lo[1]) lo = p;
        if (p[1] > hi[1]) hi = p;
      }
      const keep = new Set([column[0]!, lo, hi, column.at(-1)!]);
      for (const p of column) if (keep.has(p)) out.push(p);
    }
    column = [];
  };
  let col = Number.NaN;
  for (const [x, y] of points) {
    const px: [number, number] = [sx(x), sy(y)];
    const c = Math.floor(px[0]);
    if (c !== col) {
      flush();
      col = c;
    }
    column.push(px);
  }
  flush();
  return out;
}

export function renderPlot(stages: StageMetrics[], title: string): string {
  const train = stages.flatMap((s) =>
    s.records.filter((r): r is TrainRecord => r.kind === "train"),
  );
  const val = stages.flatMap((s) => s.records.filter((r): r is ValRecord => r.kind === "val"));
  // The logged tokens' range (global token counts): a later stage plotted alone fills the width
  // instead of sitting at the right end of an axis from 0.
  let xMax = Number.NEGATIVE_INFINITY;
  let xMin = Number.POSITIVE_INFINITY;
  for (const r of [train, val].flat()) {
    if (r.tokens > xMax) xMax = r.tokens;
    if (r.tokens < xMin) xMin = r.tokens;
  }
  const xRange: [number, number] = xMin <= xMax ? [xMin, xMax] : [0, 1];
  const boundaries = stages.map((s) => ({ x: s.records[0]?.tokens ?? 0, label: s.stage }));
  // null (non-finite, as written now) and "NaN"/"Infinity" strings (older files) are gaps
  const num = (v: unknown) => (typeof v === "number" ? v : v === null ? Number.NaN : Number(v));
  const panels = [
    panel(
      40,
      "loss",
      [
        {
          label: "train loss",
          color: "#1f77b4",
          points: train.map((r) => [r.tokens, num(r.loss)]),
        },
        {
          label: "validation loss",
          color: "#d62728",
          points: val.map((r) => [r.tokens, num(r.valLoss)]),
        },
      ],
      xRange,
      boundaries,
    ),
    panel(
      40 + PANEL_H,
      "learning rate",
      [{ label: "lr", color: "#2ca02c", points: train.map((r) => [r.tokens, r.lr]) }],
      xRange,
      boundaries,
    ),
    panel(
      40 + 2 * PANEL_H,
      "throughput (tokens/s)",
      [
        {
          label: "tokens/s",
          color: "#9467bd",
          points: train.map((r) => [r.tokens, r.tokensPerSec]),
        },
      ],
      xRange,
      boundaries,
    ),
  ];
  const H = 40 + 3 * PANEL_H + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="24" font-size="16" text-anchor="middle">${esc(title)}</text>`,
    ...panels,
    "</svg>",
    "",
  ].join("\n");
}

/** Writes <runDir>/plot.svg (or `out`) and returns its path. */
export function plotRun(runDir: string, out?: string): string {
  const stages = collectRunMetrics(runDir);
  const path = out ?? join(runDir, "plot.svg");
  writeFileSync(path, renderPlot(stages, `training run ${runDir}`));
  return path;
}
