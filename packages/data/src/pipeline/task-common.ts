/** Types, paths and helpers shared by the stage tasks (see stages.ts for the stage list). */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { BadRecord } from "../document.js";
import type { ShardFileEntry, TokenizerIdentity } from "../shards/manifest.js";
import type { StageName } from "./plan.js";

export interface Progress {
  docs: number;
  bytes: number;
  inputBytesDone: number;
}
export type ProgressSink = (p: Progress) => void;

/** Stats every task writes (merged into <output>/stats.json at the end). */
export interface TaskStats {
  stage: StageName;
  rank: number;
  source?: string;
  seconds: number;
  /**
   * CPU seconds of the worker process during the task (all its threads: zstd and file I/O run
   * on libuv's pool), the per-core cost on a busy machine where wall time includes waiting.
   */
  cpuSeconds?: number;
  documentsRead: number;
  bytesRead: number;
  removed: Record<string, number>;
  badRecords: number;
  badRecordList: BadRecord[];
  /** Time split for the benchmark: decompress+parse (read), dedup, tokenize, write. */
  timings: Record<string, number>;
  extra: Record<string, number>;
  /**
   * The tokenizer that made the task's tokens (signatures and pack tasks), so finalize can
   * write it into the manifest without loading the tokenizer again in its own process.
   */
  tokenizer?: TokenizerIdentity;
  /** The cluster task: duplicates removed from one source whose kept copy is in another. */
  crossSource?: CrossSourceCounts;
}

/** source -> source that kept the copy -> "exact-duplicate" | "near-duplicate" -> documents. */
export type CrossSourceCounts = Record<string, Record<string, Record<string, number>>>;

export const markerPath = (work: string, stage: string, rank: number) =>
  join(work, "done", stage, `${rank}`);
export const statsPath = (work: string, stage: string, rank: number) =>
  join(work, "stats", stage, `${rank}.json`);
export const sigPath = (work: string, task: number, band: number) =>
  join(
    work,
    "signatures",
    `task-${String(task).padStart(5, "0")}`,
    `band-${String(band).padStart(3, "0")}.bin`,
  );
export const bucketPath = (work: string, band: number) =>
  join(work, "buckets", `band-${String(band).padStart(3, "0")}.bin`);
export const removePath = (work: string, task: number) =>
  join(work, "remove", `task-${String(task).padStart(5, "0")}.bin`);
export const packInfoPath = (work: string, task: number) =>
  join(work, "pack", `task-${String(task).padStart(5, "0")}.json`);
export const tailPath = (work: string, task: number, split: string) =>
  join(work, "pack", `task-${String(task).padStart(5, "0")}.${split}.tail`);

export async function isDone(work: string, stage: string, rank: number): Promise<boolean> {
  return stat(markerPath(work, stage, rank)).then(
    () => true,
    () => false,
  );
}

export function newStats(stage: StageName, rank: number, source?: string): TaskStats {
  return {
    stage,
    rank,
    ...(source ? { source } : {}),
    seconds: 0,
    documentsRead: 0,
    bytesRead: 0,
    removed: {},
    badRecords: 0,
    badRecordList: [],
    timings: {},
    extra: {},
  };
}

export function bump(r: Record<string, number>, k: string, n = 1): void {
  r[k] = (r[k] ?? 0) + n;
}

/** Runs one task unless its marker exists. Returns false when skipped as already done. */

export function isValidation(id: string, fraction: number): boolean {
  if (fraction <= 0) return false;
  const h = createHash("sha1").update(id).digest();
  return h.readUInt32LE(0) / 2 ** 32 < fraction;
}

export interface PackInfo {
  task: number;
  source: string;
  splits: Record<string, { files: ShardFileEntry[]; documents: number; tailTokens: number }>;
}
