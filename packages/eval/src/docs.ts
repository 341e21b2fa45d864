/**
 * Where a task's documents come from: the bundled fixtures, a local file (jsonl, json array or
 * parquet) or a local copy of the hub dataset laid out like its `refs/convert/parquet` branch
 * (`<dir>/<owner>/<repo>/<config>/<split>/*.parquet`, `default` when the dataset has no config).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Task } from "./tasks/task.js";

/** packages/eval/fixtures, found from both src/ (tests) and dist/ (built CLI). */
export const FIXTURES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

export function fixturePath(task: Task<never>): string {
  return join(FIXTURES_DIR, `${task.name}.jsonl`);
}

/** Reads a parquet file to plain row objects (the data package's reader when wired). */
export type ParquetRowReader = (path: string) => Promise<Record<string, unknown>[]>;

export function parseJsonl(text: string, where: string): unknown[] {
  const rows: unknown[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      rows.push(JSON.parse(line));
    } catch (e) {
      throw new Error(`${where}:${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
  });
  return rows;
}

export async function readRecords(
  path: string,
  readParquet?: ParquetRowReader,
): Promise<unknown[]> {
  if (!existsSync(path)) throw new Error(`task data not found: ${path}`);
  if (path.endsWith(".parquet")) {
    if (!readParquet) {
      throw new Error(
        `${path}: parquet needs @tinyllama/data's record reader, which this build lacks; convert the split to .jsonl`,
      );
    }
    return readParquet(path);
  }
  const text = readFileSync(path, "utf8");
  if (path.endsWith(".json")) {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) throw new Error(`${path}: expected a JSON array of records`);
    return parsed;
  }
  if (path.endsWith(".jsonl")) return parseJsonl(text, path);
  throw new Error(`${path}: unsupported task data format (use .jsonl, .json or .parquet)`);
}

/** Finds a task's split in a local hub mirror; returns its files in name order. */
export function hubLayoutFiles(dataDir: string, task: Task<never>): string[] {
  const { path, name, split } = task.dataset;
  const candidates = [
    join(dataDir, path, name ?? "default", split),
    join(dataDir, path, name ?? "", split),
    join(dataDir, task.name),
  ];
  for (const dir of candidates) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
    const files = readdirSync(dir)
      .filter((f) => /\.(parquet|jsonl|json)$/.test(f))
      .sort()
      .map((f) => join(dir, f));
    if (files.length > 0) return files;
  }
  const single = join(dataDir, `${task.name}.jsonl`);
  if (existsSync(single)) return [single];
  throw new Error(
    `${task.name}: no data under ${dataDir}; expected ${candidates[0]}/*.parquet (the hub's parquet layout), ${candidates[2]}/ or ${single}`,
  );
}

export interface LoadedDocs {
  task: Task<never>;
  files: string[];
  docs: unknown[];
}

export async function loadTaskDocs(
  task: Task<never>,
  source: { dataDir?: string; readParquet?: ParquetRowReader },
): Promise<LoadedDocs> {
  const files = source.dataDir ? hubLayoutFiles(source.dataDir, task) : [fixturePath(task)];
  const docs: unknown[] = [];
  for (const file of files) docs.push(...(await readRecords(file, source.readParquet)));
  return { task, files, docs };
}
