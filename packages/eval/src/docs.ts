/**
 * Where a task's documents come from:
 * - the bundled fixtures (default; hand-written, not benchmark data);
 * - a local copy of the hub dataset (`--data-dir`), laid out like its `refs/convert/parquet`
 *   branch: `<dir>/<owner>/<repo>/<config>/<split>/*.parquet` (`default` when the dataset has no
 *   config), or its main branch (`<config>/<split>-*.parquet`, `data/<split>-*.parquet`), also
 *   under `<dir>/<task>/`, or `<dir>/<task>/*.{parquet,jsonl,json}`, or `<dir>/<task>.jsonl`;
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
 * Reads every record of a .jsonl, .jsonl.zst, .parquet or .json (array or JSON Lines) file, strictly. `command`
 * names the command in the error of a bad record: @tinyllama/data's own wording suggests dropping
 * a --strict flag, which the eval commands do not have (they never skip benchmark records).
 */
export async function readTaskRecords(path: string, command = "pnpm eval"): Promise<unknown[]> {
  if (!existsSync(path)) throw new Error(`task data not found: ${path}`);
  if (path.endsWith(".json")) {
    // a JSON array of records, or JSON Lines: what `datasets`' to_json writes by default
    // (lines=True), whatever the file is called
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, "utf8"));
    } catch {
      parsed = undefined;
    }
    if (Array.isArray(parsed)) return parsed;
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
/** What `datasets`' save_to_disk writes beside its Arrow files: metadata, not records. */
const SAVE_TO_DISK_META = new Set(["dataset_info.json", "state.json", "dataset_dict.json"]);
const isDataFile = (f: string) => DATA_FILE.test(f) && !SAVE_TO_DISK_META.has(f);

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

const dataFilesIn = (dir: string): string[] =>
  existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).filter(isDataFile).sort() : [];

/**
 * Finds a task's split in a local mirror; returns its files in name order. A dataset's folder is
 * `<dir>/<owner>/<repo>` or `<dir>/<task>`, as `huggingface-cli download --local-dir` leaves it:
 * `<config>/<split>/*.parquet` (refs/convert/parquet), or files named for the split in
 * `<config>/` (the main branch of a named config, older conversions) or `data/` (the main
 * branch of the default config). Then `<dir>/<task>/*` (see splitFiles) and `<dir>/<task>.jsonl`.
 */
export function hubLayoutFiles(dataDir: string, task: SplitRef): string[] {
  const { path, name, split } = task.dataset;
  const config = name ?? "default";
  const taskDir = join(dataDir, task.name);
  const looked: string[] = [];
  for (const root of [join(dataDir, path), taskDir]) {
    const splitDir = join(root, config, split);
    looked.push(`${splitDir}/*.parquet`);
    const inSplitDir = dataFilesIn(splitDir);
    if (inSplitDir.length > 0) return inSplitDir.map((f) => join(splitDir, f));
    for (const dir of [join(root, config), ...(name === null ? [join(root, "data")] : [])]) {
      looked.push(`${dir}/${split}-*.parquet`);
      const ours = dataFilesIn(dir).filter((f) => namesSplit(f, split));
      if (ours.length > 0) return ours.map((f) => join(dir, f));
    }
  }
  const files = dataFilesIn(taskDir);
  if (files.length > 0)
    return splitFiles(taskDir, files, split, task.name).map((f) => join(taskDir, f));
  looked.push(`${taskDir}/*`);
  for (const dir of [join(dataDir, path), taskDir]) {
    const entries = existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir) : [];
    if (entries.some((f) => f.endsWith(".arrow") || SAVE_TO_DISK_META.has(f))) {
      throw new Error(
        `${task.name}: ${dir} holds a datasets save_to_disk copy (Arrow files), which pnpm eval does not read; ` +
          `write the ${split} split with Dataset.to_parquet("${taskDir}/${split}.parquet") or to_json(...) instead`,
      );
    }
  }
  const single = join(dataDir, `${task.name}.jsonl`);
  if (existsSync(single)) return [single];
  looked.push(single);
  throw new Error(
    `${task.name}: no data under ${dataDir}; expected the ${split} split of ${path}${name ? ` (${name})` : ""} in one of ${looked.join(", ")}`,
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
