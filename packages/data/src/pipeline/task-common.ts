/** Types, paths and helpers shared by the stage tasks (see stages.ts for the stage list). */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { sweepTemps } from "../dedup/files.js";
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
  /**
   * What the bad records stand for beyond one record each: parquet rows in unreadable row
   * groups or pages (`rowsLost`, from the metadata) and input bytes nothing could read (the
   * rest of a corrupt or truncated .zst file). Absent in stats of earlier versions.
   */
  rowsLost?: number;
  bytesUnreadable?: number;
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
    rowsLost: 0,
    bytesUnreadable: 0,
    badRecordList: [],
    timings: {},
    extra: {},
  };
}

export function bump(r: Record<string, number>, k: string, n = 1): void {
  r[k] = (r[k] ?? 0) + n;
}

/**
 * Deletes the temp files of one task's work-dir outputs (`.tmp-<pid>@<host>`, see tempSuffix):
 * what a kill -9 left mid-write (a token spool temp is as large as the task's tokens) stays
 * otherwise, since the rerun writes under its own pid. `all`: every one, for finalize, when the
 * tasks are all marked done; else only those whose writer is certainly gone, at the start of
 * the task's rerun (a duplicate run of the same task on another node, after a Slurm requeue,
 * may still be writing its own). Pack's shard temps are in the output dir: `shardPrefixes`.
 */
export async function sweepTaskTemps(
  work: string,
  stage: StageName,
  rank: number,
  all: boolean,
  output?: { dir: string; shardPrefixes: string[] },
): Promise<number> {
  const task = `task-${String(rank).padStart(5, "0")}`;
  let n = 0;
  n += await sweepTemps(dirname(statsPath(work, stage, rank)), (t) => t === `${rank}.json`, all);
  n += await sweepTemps(dirname(markerPath(work, stage, rank)), (t) => t === `${rank}`, all);
  if (stage === "signatures") {
    n += await sweepTemps(join(work, "tokens"), (t) => t.startsWith(`${task}.`), all);
    n += await sweepTemps(join(work, "signatures", task), () => true, all);
  } else if (stage === "pack") {
    n += await sweepTemps(join(work, "pack"), (t) => t.startsWith(`${task}.`), all);
  } else if (stage === "buckets") {
    const band = `band-${String(rank).padStart(3, "0")}.bin`;
    n += await sweepTemps(join(work, "buckets"), (t) => t === band, all);
  } else if (stage === "cluster") {
    n += await sweepTemps(join(work, "remove"), () => true, all);
  }
  if (output) {
    const { dir, shardPrefixes } = output;
    n += await sweepTemps(dir, (t) => shardPrefixes.some((p) => t.startsWith(p)), all);
  }
  return n;
}

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
