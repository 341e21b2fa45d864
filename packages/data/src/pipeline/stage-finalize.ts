/**
 * finalize[s]: pools the tails of source s into its last files (dropping and counting only the
 * final partial block), writes manifest.json, and deletes the token spools.
 */
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { tempTarget } from "../dedup/files.js";
import {
  MANIFEST_FORMAT,
  type RunSource,
  type ShardFileEntry,
  type ShardManifest,
  type SplitManifest,
  type TokenizerIdentity,
} from "../shards/manifest.js";
import { ShardWriter, writeManifest } from "../shards/shard-writer.js";
import { type Plan, plannedSource } from "./plan.js";
import {
  bump,
  newStats,
  type PackInfo,
  packInfoPath,
  statsPath,
  sweepTaskTemps,
  type TaskStats,
  tailPath,
} from "./task-common.js";
import { removeTokenSpool } from "./token-spool.js";
import { loadPipelineTokenizer, type PipelineTokenizer } from "./tokenizer.js";

export async function finalizeTask(
  plan: Plan,
  sourceIndex: number,
  tokOverride?: PipelineTokenizer,
): Promise<TaskStats> {
  const cfg = plan.config;
  const source = cfg.sources[sourceIndex]?.name;
  if (!source) throw new Error(`finalize: no source #${sourceIndex}`);
  const stats = newStats("finalize", sourceIndex, source);
  const outDir = join(cfg.output, source);
  await mkdir(outDir, { recursive: true });
  const tasks = plan.tasks.filter((t) => t.source === source);
  const infos: PackInfo[] = [];
  for (const t of tasks)
    infos.push(JSON.parse(await readFile(packInfoPath(plan.workDir, t.index), "utf8")) as PackInfo);
  const splits: Record<string, SplitManifest> = {};
  for (const split of ["train", "validation"]) {
    const pool = new ShardWriter({
      dir: outDir,
      prefix: `${split}_${source}_pool`,
      blockSize: cfg.blockSize,
      chunkTokens: cfg.chunkTokens,
    });
    const files: ShardFileEntry[] = [];
    let documents = 0;
    for (const info of infos) {
      const s = info.splits[split];
      if (!s) continue;
      files.push(...s.files);
      documents += s.documents;
      const tail = await readFile(tailPath(plan.workDir, info.task, split));
      await pool.add(new Uint16Array(tail.buffer, tail.byteOffset, tail.byteLength / 2));
    }
    const r = await pool.finish();
    files.push(...r.files);
    const tokens = files.reduce((a, f) => a + f.tokens, 0);
    splits[split] = {
      files,
      documents,
      tokens,
      blocks: tokens / cfg.blockSize,
      droppedTailTokens: r.droppedTailTokens,
    };
  }
  // Merge the per-task stats of this source into the manifest's totals.
  const merged: Record<string, number> = {};
  let documentsRead = 0;
  let bytesRead = 0;
  let badRecords = 0;
  let rowsLost = 0;
  let bytesUnreadable = 0;
  let identity: TokenizerIdentity | undefined;
  for (const t of tasks) {
    const s = JSON.parse(
      await readFile(statsPath(plan.workDir, "pack", t.index), "utf8"),
    ) as TaskStats;
    if (s.tokenizer && identity && JSON.stringify(s.tokenizer) !== JSON.stringify(identity))
      throw new Error(
        `finalize ${source}: task ${t.index} was tokenized by ${s.tokenizer.name} ${s.tokenizer.hash}, ` +
          `another task by ${identity.name} ${identity.hash}; delete ${plan.workDir} and run again`,
      );
    identity ??= s.tokenizer;
    documentsRead += s.documentsRead;
    bytesRead += s.bytesRead;
    badRecords += s.badRecords;
    rowsLost += s.rowsLost ?? 0;
    bytesUnreadable += s.bytesUnreadable ?? 0;
    for (const [k, v] of Object.entries(s.removed)) bump(merged, k, v);
  }
  // reasons in name order: in task order they would follow the tasks' boundaries, so the
  // manifest's bytes would change with filesPerTask although its counts do not
  const removed: Record<string, number> = {};
  for (const k of Object.keys(merged).sort()) removed[k] = merged[k] as number;
  const removedCount = Object.values(removed).reduce((a, b) => a + b, 0);
  const crossSource = cfg.dedup.enabled ? await crossSourceRemovals(plan, source) : undefined;
  const run: RunSource[] = cfg.sources.map((s) => {
    const hub = s.hub ? plannedSource(plan, s.name).hub : undefined;
    return { name: s.name, ...(s.local ? { local: s.local } : {}), ...(hub ? { hub } : {}) };
  });
  // the tasks recorded the tokenizer that made their tokens; loading it here again (a fresh
  // process) only to hash its vocabulary cost more than the rest of finalize
  const tokenizer =
    identity ?? (tokOverride ?? (await loadPipelineTokenizer(cfg.tokenizer))).identity;
  const manifest: ShardManifest = {
    format: MANIFEST_FORMAT,
    source,
    blockSize: cfg.blockSize,
    chunkTokens: cfg.chunkTokens,
    dtype: "uint16",
    tokenizer,
    eosAppended: true,
    splits,
    stats: {
      documentsRead,
      bytesRead,
      removed,
      badRecords,
      rowsLost,
      bytesUnreadable,
      documentsKept: documentsRead - removedCount,
    },
    // The whole run, not this source alone: dedup removes a document of this source when a
    // copy is kept in another, so these shards depend on every source and on their order.
    config: {
      ...cfg,
      sources: cfg.sources.map((s, i) => {
        const commit = run[i]?.hub?.commit;
        return commit && s.hub ? { ...s, hub: { ...s.hub, revision: commit } } : s;
      }),
    },
    run: { sources: run },
    createdAt: new Date().toISOString(),
  };
  if (crossSource) manifest.stats.duplicatesOfOtherSources = crossSource;
  const listed = new Set(Object.values(splits).flatMap((s) => s.files.map((f) => f.name)));
  // Shards of an earlier run with other settings, and temp files of writers killed mid-write
  // (pack tasks of this source are all done, so no live writer owns one).
  const names = await readdir(outDir);
  const stale = names.filter((n) => n.endsWith(".bin") && !listed.has(n));
  const temps = names.filter((n) => tempTarget(n) !== undefined);
  stats.extra = {
    staleFiles: stale.length,
    staleTempFiles: temps.length,
    trainBlocks: splits.train?.blocks ?? 0,
    validationBlocks: splits.validation?.blocks ?? 0,
  };
  for (const name of [...stale, ...temps]) await rm(join(outDir, name), { force: true });
  await writeManifest(outDir, manifest);
  // the token spools were only needed by pack; the shards now hold their tokens
  for (const t of tasks) await removeTokenSpool(plan.workDir, t.index);
  // Work-dir temps of this source's tasks that no rerun swept (a task killed mid-write and
  // then finished on another node, whose temps a start-of-task sweep must not judge): every
  // signatures and pack task of the source is marked done, so none is live.
  let workTemps = 0;
  for (const t of tasks)
    for (const stage of ["signatures", "pack"] as const)
      workTemps += await sweepTaskTemps(plan.workDir, stage, t.index, true);
  stats.extra.staleWorkTempFiles = workTemps;
  stats.documentsRead = documentsRead;
  stats.bytesRead = bytesRead;
  stats.removed = removed;
  stats.badRecords = badRecords;
  stats.rowsLost = rowsLost;
  stats.bytesUnreadable = bytesUnreadable;
  return stats;
}

/**
 * This source's duplicates whose kept copy is in another source, from the cluster task's
 * stats. A cluster stats file without them (written by an earlier version of this package,
 * then resumed) gives undefined: the manifest then omits the field rather than claim zero.
 */
async function crossSourceRemovals(
  plan: Plan,
  source: string,
): Promise<Record<string, Record<string, number>> | undefined> {
  const s = JSON.parse(await readFile(statsPath(plan.workDir, "cluster", 0), "utf8")) as TaskStats;
  return s.crossSource ? (s.crossSource[source] ?? {}) : undefined;
}
