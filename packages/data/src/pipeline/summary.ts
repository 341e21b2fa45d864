/**
 * Merges every task's stats into <output>/stats.json and renders the closing summary table.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeAtomic } from "../dedup/files.js";
import { table } from "../executors/progress.js";
import type { ShardManifest } from "../shards/manifest.js";
import type { Plan } from "./plan.js";
import { statsPath, type TaskStats } from "./stages.js";

export interface RunSummary {
  statsFile: string;
  table: string;
  /** Seconds per stage summed over tasks, and per time category (read/dedup/tokenize/write). */
  timings: Record<string, number>;
  badRecords: number;
  /** Parquet rows in unreadable row groups/pages and unreadable .zst bytes, all sources. */
  rowsLost: number;
  bytesUnreadable: number;
}

export async function summarize(plan: Plan, wallSeconds: number): Promise<RunSummary> {
  const all: TaskStats[] = [];
  for (const stage of plan.stages) {
    for (let r = 0; r < stage.tasks; r++) {
      const text = await readFile(statsPath(plan.workDir, stage.name, r), "utf8").catch(
        () => undefined,
      );
      if (text) all.push(JSON.parse(text) as TaskStats);
    }
  }
  const timings: Record<string, number> = {};
  for (const s of all)
    for (const [k, v] of Object.entries(s.timings))
      timings[`${s.stage}.${k}`] = (timings[`${s.stage}.${k}`] ?? 0) + v;
  const rows: (string | number)[][] = [
    [
      "source",
      "docs read",
      "MB",
      "filtered",
      "exact dup",
      "near dup",
      "dup of other src",
      "bad",
      "rows lost",
      "bytes unreadable",
      "kept",
      "train blocks",
      "val blocks",
      "train tokens",
    ],
  ];
  let bad = 0;
  let rowsLost = 0;
  let bytesUnreadable = 0;
  for (const src of plan.config.sources) {
    const m = JSON.parse(
      await readFile(join(plan.config.output, src.name, "manifest.json"), "utf8"),
    ) as ShardManifest;
    const r = m.stats.removed;
    const filtered = Object.entries(r)
      .filter(([k]) => !k.endsWith("-duplicate"))
      .reduce((a, [, v]) => a + v, 0);
    bad += m.stats.badRecords;
    rowsLost += m.stats.rowsLost ?? 0;
    bytesUnreadable += m.stats.bytesUnreadable ?? 0;
    rows.push([
      src.name,
      m.stats.documentsRead,
      (m.stats.bytesRead / 1e6).toFixed(1),
      filtered,
      r["exact-duplicate"] ?? 0,
      r["near-duplicate"] ?? 0,
      // of the duplicates, those whose kept copy is in another source of the run
      Object.values(m.stats.duplicatesOfOtherSources ?? {})
        .flatMap((byReason) => Object.values(byReason))
        .reduce((a, b) => a + b, 0),
      m.stats.badRecords,
      m.stats.rowsLost ?? 0,
      m.stats.bytesUnreadable ?? 0,
      m.stats.documentsKept,
      m.splits.train?.blocks ?? 0,
      m.splits.validation?.blocks ?? 0,
      m.splits.train?.tokens ?? 0,
    ]);
  }
  const statsFile = join(plan.config.output, "stats.json");
  await writeAtomic(statsFile, JSON.stringify({ wallSeconds, timings, tasks: all }, null, 1));
  return { statsFile, table: table(rows), timings, badRecords: bad, rowsLost, bytesUnreadable };
}
