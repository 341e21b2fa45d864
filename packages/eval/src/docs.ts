/**
 * Where a task's documents come from:
 * - the bundled fixtures (default; hand-written, not benchmark data);
 * - a local copy of the hub dataset (`--data-dir`), laid out like its `refs/convert/parquet`
 *   branch: `<dir>/<owner>/<repo>/<config>/<split>/*.parquet` (`default` when the dataset has no
 *   config), or `<dir>/<task>/*.{parquet,jsonl}`, or `<dir>/<task>.jsonl`;
 * - the hub itself (`--hub`): the split's parquet files from `refs/convert/parquet`, downloaded
 *   into the cache by @tinyllama/data's hub client (HF_TOKEN, HF_ENDPOINT honoured).
 * Files are read with @tinyllama/data's record readers in strict mode: a bad record in a
 * benchmark is an error naming the file and line/row, never a silently skipped doc.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BadRecordError,
  BadRecordLog,
  downloadToCache,
  formatLocation,
  formatOf,
  type HubOptions,
  listHubFiles,
  readRecords,
} from "@tinyllama/data";
import type { Task } from "./tasks/task.js";

/** packages/eval/fixtures, found from both src/ (tests) and dist/ (built CLI). */
export const FIXTURES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

export function fixturePath(task: Task<never>): string {
  return join(FIXTURES_DIR, `${task.name}.jsonl`);
}

/**
 * Reads every record of a .jsonl, .jsonl.zst, .parquet or .json (array) file, strictly. `command`
 * names the command in the error of a bad record: @tinyllama/data's own wording suggests dropping
 * a --strict flag, which the eval commands do not have (they never skip benchmark records).
 */
export async function readTaskRecords(path: string, command = "pnpm eval"): Promise<unknown[]> {
  if (!existsSync(path)) throw new Error(`task data not found: ${path}`);
  if (path.endsWith(".json")) {
    const parsed: unknown = JSON.parse(readFileSync(path, "utf8"));
    if (!Array.isArray(parsed)) throw new Error(`${path}: expected a JSON array of records`);
    return parsed;
  }
  const rows: unknown[] = [];
  try {
    for await (const r of readRecords(path, formatOf(path), new BadRecordLog({ strict: true }))) {
      rows.push(r.value);
    }
  } catch (e) {
    if (!(e instanceof BadRecordError)) throw e;
    throw new Error(
      `${formatLocation(e.record)}: ${e.record.reason} (${command} reads benchmark data strictly and has no flag to skip bad records: fix or replace the file)`,
    );
  }
  return rows;
}

/** What locating a dataset split needs: a name (for the flat layouts) and the hub coordinates. */
export type SplitRef = {
  name: string;
  dataset: Pick<Task<never>["dataset"], "path" | "name" | "split">;
};

const DATA_FILE = /\.(parquet|jsonl|jsonl\.zst|json)$/;

const SPLIT_NAMES = ["train", "validation", "valid", "val", "dev", "test", "eval"];
const namesSplit = (file: string, split: string) =>
  new RegExp(`(^|[^a-z0-9])${split}([^a-z0-9]|$)`, "i").test(file);

/**
 * The files of `split` in a folder that may hold several splits (`<dir>/<task>/`): those whose
 * names name the split; all of them when no name names any split; an error when names name
 * only other splits (scoring a train file as the benchmark would go unnoticed otherwise).
 */
function splitFiles(dir: string, files: string[], split: string, task: string): string[] {
  const ours = files.filter((f) => namesSplit(f, split));
  if (ours.length > 0) return ours;
  const others = files.filter((f) => SPLIT_NAMES.some((s) => namesSplit(f, s)));
  if (others.length === 0) return files;
  throw new Error(
    `${task}: ${dir} has ${others.join(", ")} but no file named for the ${split} split, which this task evaluates`,
  );
}

/** Finds a task's split in a local hub mirror; returns its files in name order. */
export function hubLayoutFiles(dataDir: string, task: SplitRef): string[] {
  const { path, name, split } = task.dataset;
  const splitDir = join(dataDir, path, name ?? "default", split);
  const taskDir = join(dataDir, task.name);
  for (const dir of [splitDir, taskDir]) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
    let files = readdirSync(dir)
      .filter((f) => DATA_FILE.test(f))
      .sort();
    if (files.length === 0) continue;
    if (dir === taskDir) files = splitFiles(dir, files, split, task.name);
    return files.map((f) => join(dir, f));
  }
  const single = join(dataDir, `${task.name}.jsonl`);
  if (existsSync(single)) return [single];
  throw new Error(
    `${task.name}: no data under ${dataDir}; expected ${splitDir}/*.parquet (the hub's parquet layout), ${taskDir}/ or ${single}`,
  );
}

/** The hub's parquet conversion branch, where every dataset's splits live as parquet. */
export const PARQUET_REVISION = "refs/convert/parquet";

/** Downloads (or reuses from the cache) the parquet files of a task's split. */
export async function hubTaskFiles(task: SplitRef, hub: HubOptions = {}): Promise<string[]> {
  const { path: repo, name, split } = task.dataset;
  const config = name ?? "default";
  const options = { ...hub, revision: hub.revision ?? PARQUET_REVISION };
  // Current layout {config}/{split}/NNNN.parquet; older conversions {config}/{repo}-{split}.parquet.
  const globs = [`${config}/${split}/*.parquet`, `${config}/*-${split}.parquet`];
  const files = await listHubFiles(repo, globs, options);
  if (files.length === 0) {
    throw new Error(
      `${task.name}: no parquet files for ${repo} config ${config} split ${split} at revision ${options.revision}`,
    );
  }
  const local: string[] = [];
  for (const f of files) local.push(await downloadToCache(repo, f.path, options));
  return local;
}

export interface DocSource {
  dataDir?: string;
  /** Read from the hub with these options (ignored when dataDir is set). */
  hub?: HubOptions;
}

export interface LoadedDocs {
  task: Task<never>;
  files: string[];
  docs: unknown[];
}

export async function loadTaskDocs(task: Task<never>, source: DocSource = {}): Promise<LoadedDocs> {
  const files = source.dataDir
    ? hubLayoutFiles(source.dataDir, task)
    : source.hub
      ? await hubTaskFiles(task, source.hub)
      : [fixturePath(task)];
  const docs: unknown[] = [];
  for (const file of files) {
    try {
      docs.push(...(await readTaskRecords(file)));
    } catch (e) {
      throw new Error(`${task.name}: ${(e as Error).message}`);
    }
  }
  return { task, files, docs };
}
