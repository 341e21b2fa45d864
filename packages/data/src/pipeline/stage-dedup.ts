/**
 * buckets[b]: k-way merge of band b over all tasks into duplicate pairs.
 * cluster[0]: union-find over every band's pairs into per-task remove lists.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { clusterPairs, REMOVE_EXACT } from "../dedup/cluster.js";
import { writeRemoveList } from "../dedup/files.js";
import { mergeBand } from "../dedup/merge.js";
import type { Plan } from "./plan.js";
import {
  bucketPath,
  bump,
  type CrossSourceCounts,
  newStats,
  removePath,
  sigPath,
  type TaskStats,
} from "./task-common.js";

export async function bucketsTask(plan: Plan, band: number): Promise<TaskStats> {
  const stats = newStats("buckets", band);
  const t = performance.now();
  const files = plan.tasks.map((task) => ({
    task: task.index,
    path: sigPath(plan.workDir, task.index, band),
  }));
  stats.extra.pairs = await mergeBand(files, bucketPath(plan.workDir, band));
  stats.timings = { dedup: (performance.now() - t) / 1000 };
  return stats;
}

/** Deterministic split assignment from the document id. */

export async function clusterTask(plan: Plan): Promise<TaskStats> {
  const stats = newStats("cluster", 0);
  const t = performance.now();
  const bands = plan.config.dedup.minhash.bands;
  const files = Array.from({ length: bands + 1 }, (_, b) => ({
    path: bucketPath(plan.workDir, b),
    exact: b === bands,
  }));
  // Dedup runs across all sources of the run: a component may keep a document of one source
  // and remove its copies from another. Count those per (source, source that kept the copy):
  // finalize puts them in the manifest, so a source's shards say what they lost to the others.
  const sourceOf = plan.tasks.map((t) => t.source);
  const crossSource: CrossSourceCounts = {};
  const lists = clusterPairs(files, (task, keptTask, reason) => {
    const source = sourceOf[task] as string;
    const keptIn = sourceOf[keptTask] as string;
    if (keptIn === source) return;
    const bySource = crossSource[source] ?? {};
    crossSource[source] = bySource;
    const counts = bySource[keptIn] ?? {};
    bySource[keptIn] = counts;
    bump(counts, reason === REMOVE_EXACT ? "exact-duplicate" : "near-duplicate");
  });
  await rm(join(plan.workDir, "remove"), { recursive: true, force: true });
  await mkdir(join(plan.workDir, "remove"), { recursive: true });
  for (const [task, list] of lists) {
    await writeRemoveList(removePath(plan.workDir, task), list);
    stats.extra.removed = (stats.extra.removed ?? 0) + list.length / 2;
  }
  stats.crossSource = crossSource;
  stats.timings = { dedup: (performance.now() - t) / 1000 };
  return stats;
}

/** Deterministic split assignment from the document id. */
