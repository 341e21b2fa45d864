/**
 * The stages of a run, each a set of independent tasks (datatrove's design):
 *   signatures[t]  read task t once: filter, MinHash + exact keys per band (sorted files),
 *                  tokenize + EOS into the task's token spool   (stage-signatures.ts)
 *   buckets[b]     merge band b over all tasks -> duplicate pairs (stage-dedup.ts)
 *   cluster[0]     union-find over all pairs -> per task the docs to remove (stage-dedup.ts)
 *   pack[t]        drop the removed docs from the spool, write full LITPKDS chunks; the
 *                  unfilled remainder goes to a tail file       (stage-pack.ts)
 *   finalize[s]    pool the tails of source s into the last files, write manifest.json
 *                                                               (stage-finalize.ts)
 * A task writes its outputs atomically and then a completion marker; a rerun skips marked
 * tasks, and an unmarked one is redone from scratch with identical results.
 */
import { join } from "node:path";
import { writeAtomic } from "../dedup/files.js";
import type { Plan, PlannedTask, StageName } from "./plan.js";
import { bucketsTask, clusterTask } from "./stage-dedup.js";
import { finalizeTask } from "./stage-finalize.js";
import { packTask } from "./stage-pack.js";
import { signaturesTask } from "./stage-signatures.js";
import {
  isDone,
  markerPath,
  type ProgressSink,
  statsPath,
  sweepTaskTemps,
  type TaskStats,
} from "./task-common.js";
import type { PipelineTokenizer } from "./tokenizer.js";

export {
  isDone,
  markerPath,
  type Progress,
  type ProgressSink,
  statsPath,
  type TaskStats,
} from "./task-common.js";

export async function runTask(
  plan: Plan,
  stage: StageName,
  rank: number,
  onProgress?: ProgressSink,
  tokenizerOverride?: PipelineTokenizer,
): Promise<boolean> {
  const work = plan.workDir;
  if (await isDone(work, stage, rank)) return false;
  // an earlier attempt killed mid-write (kill -9, OOM, node failure) left its temp files
  const task = stage === "signatures" || stage === "pack" ? plan.tasks[rank] : undefined;
  const tag = String(rank).padStart(5, "0");
  const swept = await sweepTaskTemps(
    work,
    stage,
    rank,
    false,
    task && stage === "pack"
      ? {
          dir: join(plan.config.output, task.source),
          shardPrefixes: ["train", "validation"].map((s) => `${s}_${task.source}_t${tag}_`),
        }
      : undefined,
  );
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let stats: TaskStats;
  switch (stage) {
    case "signatures":
      stats = await signaturesTask(plan, taskAt(plan, rank), onProgress, tokenizerOverride);
      break;
    case "buckets":
      stats = await bucketsTask(plan, rank);
      break;
    case "cluster":
      stats = await clusterTask(plan);
      break;
    case "pack":
      stats = await packTask(plan, taskAt(plan, rank), onProgress, tokenizerOverride);
      break;
    case "finalize":
      stats = await finalizeTask(plan, rank, tokenizerOverride);
      break;
    default:
      throw new Error(`unknown stage ${stage as string}`);
  }
  stats.seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  stats.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  if (swept > 0) stats.extra.staleTempFilesRemoved = swept;
  await writeAtomic(statsPath(work, stage, rank), JSON.stringify(stats));
  await writeAtomic(markerPath(work, stage, rank), "");
  return true;
}

function taskAt(plan: Plan, rank: number): PlannedTask {
  const t = plan.tasks[rank];
  if (!t) throw new Error(`task ${rank} out of range [0, ${plan.tasks.length})`);
  return t;
}
