/**
 * Run metrics: one JSON object per line in <stage>/metrics.jsonl (append-only, so a resumed run
 * continues the same file), and a progress line with rate and ETA for people watching.
 */
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import { isNoSpaceError } from "../checkpoint/store.js";
import { formatTokens } from "../optim/schedule.js";

export interface TrainRecord {
  kind: "train";
  stage: string;
  step: number;
  tokens: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  stepSeconds: number;
  mfu: number | null;
  memoryBytes: number;
  skipped: boolean;
  time: string;
}

export interface ValRecord {
  kind: "val";
  stage: string;
  step: number;
  tokens: number;
  valLoss: number;
  valTokens: number;
  time: string;
}

export type MetricsRecord = TrainRecord | ValRecord;

export class MetricsWriter {
  readonly path: string;
  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
  }
  write(r: MetricsRecord): void {
    // JSON has no NaN/Infinity: write null (a missing value to pandas, polars and jq; `skipped`
    // marks the step), and which value it was under `nonFinite` ({"loss": "NaN"}). A string in
    // the column itself ("NaN") turned it into strings in polars, or failed its read ("cannot
    // parse 'NaN' (string) as Float64") past its schema-inference rows.
    const nonFinite: Record<string, string> = {};
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === "number" && !Number.isFinite(v)) nonFinite[k] = String(v);
    }
    const line = JSON.stringify(Object.keys(nonFinite).length > 0 ? { ...r, nonFinite } : r);
    try {
      appendFileSync(this.path, `${line}\n`);
    } catch (e) {
      // The bare "ENOSPC: no space left on device, write" names no file; keep the code, so the
      // CLI still exits with EXIT_DISK_FULL, and say which file and what to do.
      if (!isNoSpaceError(e)) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      throw Object.assign(
        new Error(
          `${this.path}: the disk is full (${code}) while appending step ${r.step}'s metrics record. ` +
            "Free space on that filesystem, then rerun the same command: it resumes from the last checkpoint, " +
            "and metrics.jsonl keeps every record up to it",
        ),
        { code },
      );
    }
  }
}

/** Reads metrics.jsonl; on resume, records after the checkpoint's step are dropped by the caller. */
export function readMetrics(path: string): MetricsRecord[] {
  if (!existsSync(path)) return [];
  const out: MetricsRecord[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch {
      // A line cut by a crash mid-write: everything before it is still good.
    }
  }
  return out;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

export function progressLine(p: {
  stage: string;
  step: number;
  stageTokens: number;
  stageBudget: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  mfu: number | null;
  skipped: boolean;
}): string {
  const pct = (100 * p.stageTokens) / p.stageBudget;
  const eta = Math.max(0, p.stageBudget - p.stageTokens) / Math.max(p.tokensPerSec, 1e-9);
  const mfu = p.mfu === null ? "" : ` | MFU ${(100 * p.mfu).toFixed(1)}%`;
  return (
    `[${p.stage}] step ${p.step} | ${formatTokens(p.stageTokens)}/${formatTokens(p.stageBudget)} tokens ` +
    `(${pct.toFixed(1)}%) | loss ${p.loss.toFixed(4)}${p.skipped ? " (skipped: not finite)" : ""} | ` +
    `lr ${p.lr.toExponential(2)} | grad norm ${p.gradNorm.toFixed(3)} | ` +
    `${formatTokens(p.tokensPerSec)} tok/s${mfu} | ETA ${formatDuration(eta)}`
  );
}

/** Drops metrics lines past a checkpoint's step (they belong to the lost continuation). */
export function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const keep = readMetrics(path).filter((r) => r.step <= step);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, keep.map((r) => `${JSON.stringify(r)}\n`).join(""));
  renameSync(tmp, path);
}
