/**
 * The stages of a run, each a set of independent tasks (datatrove's design):
 *   signatures[t]  read task t, write per band a sorted file of (band key, doc)
 *   buckets[b]     merge band b over all tasks -> duplicate pairs
 *   cluster[0]     union-find over all pairs -> per task the docs to remove
 *   pack[t]        re-read task t, drop removed/filtered docs, tokenize + EOS, write full
 *                  LITPKDS chunks; the unfilled remainder goes to a tail file
 *   finalize[s]    pool the tails of source s into the last files, write manifest.json
 * A task writes its outputs atomically and then a completion marker; a rerun skips marked
 * tasks, and an unmarked one is redone from scratch with identical results.
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  clusterPairs,
  mergeBand,
  REMOVE_EXACT,
  readRemoveList,
  writeAtomic,
  writeRemoveList,
  writeSortedKeys,
} from "../dedup/files.js";
import { MinHasher } from "../dedup/minhash.js";
import { type BadRecord, BadRecordLog } from "../document.js";
import {
  MANIFEST_FORMAT,
  type ShardFileEntry,
  type ShardManifest,
  type SplitManifest,
} from "../shards/manifest.js";
import { ShardWriter, writeManifest } from "../shards/shard-writer.js";
import type { Plan, PlannedTask, StageName } from "./plan.js";
import { readTaskDocuments } from "./read-docs.js";
import { readTokenSpool, removeTokenSpool, TokenSpoolWriter } from "./token-spool.js";
import { loadPipelineTokenizer, type PipelineTokenizer } from "./tokenizer.js";

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
  documentsRead: number;
  bytesRead: number;
  removed: Record<string, number>;
  badRecords: number;
  badRecordList: BadRecord[];
  /** Time split for the benchmark: decompress+parse (read), dedup, tokenize, write. */
  timings: Record<string, number>;
  extra: Record<string, number>;
}

export const markerPath = (work: string, stage: string, rank: number) =>
  join(work, "done", stage, `${rank}`);
export const statsPath = (work: string, stage: string, rank: number) =>
  join(work, "stats", stage, `${rank}.json`);
const sigPath = (work: string, task: number, band: number) =>
  join(
    work,
    "signatures",
    `task-${String(task).padStart(5, "0")}`,
    `band-${String(band).padStart(3, "0")}.bin`,
  );
const bucketPath = (work: string, band: number) =>
  join(work, "buckets", `band-${String(band).padStart(3, "0")}.bin`);
const removePath = (work: string, task: number) =>
  join(work, "remove", `task-${String(task).padStart(5, "0")}.bin`);
const packInfoPath = (work: string, task: number) =>
  join(work, "pack", `task-${String(task).padStart(5, "0")}.json`);
const tailPath = (work: string, task: number, split: string) =>
  join(work, "pack", `task-${String(task).padStart(5, "0")}.${split}.tail`);

export async function isDone(work: string, stage: string, rank: number): Promise<boolean> {
  return stat(markerPath(work, stage, rank)).then(
    () => true,
    () => false,
  );
}

function newStats(stage: StageName, rank: number, source?: string): TaskStats {
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

function bump(r: Record<string, number>, k: string, n = 1): void {
  r[k] = (r[k] ?? 0) + n;
}

/** Runs one task unless its marker exists. Returns false when skipped as already done. */
export async function runTask(
  plan: Plan,
  stage: StageName,
  rank: number,
  onProgress?: ProgressSink,
  tokenizerOverride?: PipelineTokenizer,
): Promise<boolean> {
  const work = plan.workDir;
  if (await isDone(work, stage, rank)) return false;
  const t0 = performance.now();
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
  await writeAtomic(statsPath(work, stage, rank), JSON.stringify(stats));
  await writeAtomic(markerPath(work, stage, rank), "");
  return true;
}

function taskAt(plan: Plan, rank: number): PlannedTask {
  const t = plan.tasks[rank];
  if (!t) throw new Error(`task ${rank} out of range [0, ${plan.tasks.length})`);
  return t;
}

async function signaturesTask(
  plan: Plan,
  task: PlannedTask,
  onProgress?: ProgressSink,
  tokOverride?: PipelineTokenizer,
): Promise<TaskStats> {
  const cfg = plan.config;
  const stats = newStats("signatures", task.index, task.source);
  // Tokenize here too, while every document is parsed anyway: pack then only filters.
  const tLoad = performance.now();
  const tok = tokOverride ?? (await loadPipelineTokenizer(cfg.tokenizer));
  const loadSeconds = (performance.now() - tLoad) / 1000;
  const spool = await TokenSpoolWriter.open(plan.workDir, task.index);
  let batch: { docIndex: number; text: string; split: number }[] = [];
  let batchChars = 0;
  let tTokenize = 0;
  let tSpool = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    let t = performance.now();
    const ids = await tok.encodeBatch(batch.map((b) => b.text));
    tTokenize += performance.now() - t;
    t = performance.now();
    for (let i = 0; i < batch.length; i++) {
      const b = batch[i] as { docIndex: number; split: number };
      await spool.append(b.docIndex, b.split, ids[i] as ArrayLike<number>, tok.eosId);
    }
    tSpool += performance.now() - t;
    batch = [];
    batchChars = 0;
  };
  const bad = new BadRecordLog({ strict: cfg.strict });
  const hasher = new MinHasher(cfg.dedup.minhash);
  const bands = cfg.dedup.minhash.bands;
  const keys: number[][] = Array.from({ length: bands + 1 }, () => []);
  const progress = { inputBytesDone: 0 };
  let tDedup = 0;
  const tStart = performance.now();
  for await (const { doc, docIndex, bytes, dropReason } of readTaskDocuments(
    plan,
    task,
    bad,
    progress,
  )) {
    stats.documentsRead++;
    stats.bytesRead += bytes;
    const reason = dropReason ?? (doc.text.length === 0 ? "empty-text" : undefined);
    if (reason) {
      bump(stats.removed, reason); // dropped docs never make others duplicates
      continue;
    }
    batch.push({
      docIndex,
      text: doc.text,
      split: isValidation(doc.id, cfg.validationFraction) ? 1 : 0,
    });
    batchChars += doc.text.length;
    if (batchChars >= 1 << 20 || batch.length >= 512) await flush();
    const t = performance.now();
    const sig = hasher.signature(doc.text);
    keys[bands]?.push(sig.exact[0], sig.exact[1], docIndex);
    if (sig.words > 0 && sig.words >= cfg.dedup.minWords) {
      for (let b = 0; b < bands; b++)
        keys[b]?.push(sig.bandKeys[2 * b] as number, sig.bandKeys[2 * b + 1] as number, docIndex);
    }
    tDedup += performance.now() - t;
    if (stats.documentsRead % 500 === 0)
      onProgress?.({
        docs: stats.documentsRead,
        bytes: stats.bytesRead,
        inputBytesDone: progress.inputBytesDone,
      });
  }
  await flush();
  let tw = performance.now();
  await spool.close();
  tSpool += performance.now() - tw;
  tw = performance.now();
  for (let b = 0; b <= bands; b++)
    await writeSortedKeys(sigPath(plan.workDir, task.index, b), Uint32Array.from(keys[b] ?? []));
  stats.timings = {
    read: (tw - tStart - tDedup - tTokenize - tSpool) / 1000,
    dedup: (tDedup + performance.now() - tw) / 1000,
    tokenize: tTokenize / 1000,
    write: tSpool / 1000,
    loadTokenizer: loadSeconds,
  };
  stats.badRecords = bad.count;
  stats.badRecordList = bad.entries;
  onProgress?.({
    docs: stats.documentsRead,
    bytes: stats.bytesRead,
    inputBytesDone: progress.inputBytesDone,
  });
  return stats;
}

async function bucketsTask(plan: Plan, band: number): Promise<TaskStats> {
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

async function clusterTask(plan: Plan): Promise<TaskStats> {
  const stats = newStats("cluster", 0);
  const t = performance.now();
  const bands = plan.config.dedup.minhash.bands;
  const files = Array.from({ length: bands + 1 }, (_, b) => ({
    path: bucketPath(plan.workDir, b),
    exact: b === bands,
  }));
  const lists = clusterPairs(files);
  await rm(join(plan.workDir, "remove"), { recursive: true, force: true });
  await mkdir(join(plan.workDir, "remove"), { recursive: true });
  for (const [task, list] of lists) {
    await writeRemoveList(removePath(plan.workDir, task), list);
    stats.extra.removed = (stats.extra.removed ?? 0) + list.length / 2;
  }
  stats.timings = { dedup: (performance.now() - t) / 1000 };
  return stats;
}

/** Deterministic split assignment from the document id. */
function isValidation(id: string, fraction: number): boolean {
  if (fraction <= 0) return false;
  const h = createHash("sha1").update(id).digest();
  return h.readUInt32LE(0) / 2 ** 32 < fraction;
}

interface PackInfo {
  task: number;
  source: string;
  splits: Record<string, { files: ShardFileEntry[]; documents: number; tailTokens: number }>;
}

async function packTask(
  plan: Plan,
  task: PlannedTask,
  onProgress?: ProgressSink,
  tokOverride?: PipelineTokenizer,
): Promise<TaskStats> {
  const cfg = plan.config;
  const stats = newStats("pack", task.index, task.source);
  const bad = new BadRecordLog({ strict: cfg.strict });
  const remove = cfg.dedup.enabled
    ? readRemoveList(removePath(plan.workDir, task.index))
    : new Map<number, number>();
  const tLoad = performance.now();
  const tok = cfg.dedup.enabled
    ? undefined
    : (tokOverride ?? (await loadPipelineTokenizer(cfg.tokenizer)));
  const outDir = join(cfg.output, task.source);
  await mkdir(outDir, { recursive: true });
  const tag = String(task.index).padStart(5, "0");
  const writers = {
    train: new ShardWriter({
      dir: outDir,
      prefix: `train_${task.source}_t${tag}`,
      blockSize: cfg.blockSize,
      chunkTokens: cfg.chunkTokens,
    }),
    validation: new ShardWriter({
      dir: outDir,
      prefix: `validation_${task.source}_t${tag}`,
      blockSize: cfg.blockSize,
      chunkTokens: cfg.chunkTokens,
    }),
  };
  const docs = { train: 0, validation: 0 };
  const timings = {
    read: 0,
    tokenize: 0,
    write: 0,
    loadTokenizer: (performance.now() - tLoad) / 1000,
  };
  const progress = { inputBytesDone: 0 };
  let batch: { text: string; split: "train" | "validation" }[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    let t = performance.now();
    if (!tok) throw new Error("pack: no tokenizer");
    const ids = await tok.encodeBatch(batch.map((b) => b.text));
    timings.tokenize += (performance.now() - t) / 1000;
    t = performance.now();
    for (let i = 0; i < batch.length; i++) {
      const split = (batch[i] as { split: "train" | "validation" }).split;
      const w = writers[split];
      await w.add(ids[i] as ArrayLike<number>);
      await w.add([tok.eosId]);
      docs[split]++;
    }
    timings.write += (performance.now() - t) / 1000;
    batch = [];
    batchBytes = 0;
  };
  let t = performance.now();
  if (cfg.dedup.enabled) {
    // The signatures stage read, filtered and tokenized this task already: take its counts
    // and its token spool, and drop only the duplicates.
    const sig = JSON.parse(
      await readFile(statsPath(plan.workDir, "signatures", task.index), "utf8"),
    ) as TaskStats;
    stats.documentsRead = sig.documentsRead;
    stats.bytesRead = sig.bytesRead;
    stats.removed = { ...sig.removed };
    bad.count = sig.badRecords;
    bad.entries.push(...sig.badRecordList);
    let seen = 0;
    for await (const { docIndex, split, tokens } of readTokenSpool(plan.workDir, task.index)) {
      const dup = remove.get(docIndex);
      if (dup !== undefined)
        bump(stats.removed, dup === REMOVE_EXACT ? "exact-duplicate" : "near-duplicate");
      else {
        const name = split === 1 ? "validation" : "train";
        await writers[name].add(tokens);
        docs[name]++;
      }
      if (++seen % 2000 === 0) onProgress?.({ docs: seen, bytes: 0, inputBytesDone: 0 });
    }
    timings.write += (performance.now() - t) / 1000;
  } else {
    for await (const { doc, bytes, dropReason } of readTaskDocuments(plan, task, bad, progress)) {
      stats.documentsRead++;
      stats.bytesRead += bytes;
      const reason = dropReason ?? (doc.text.length === 0 ? "empty-text" : undefined);
      if (reason) bump(stats.removed, reason);
      else {
        batch.push({
          text: doc.text,
          split: isValidation(doc.id, cfg.validationFraction) ? "validation" : "train",
        });
        batchBytes += doc.text.length;
      }
      if (batchBytes >= 1 << 20 || batch.length >= 512) {
        timings.read += (performance.now() - t) / 1000;
        await flush();
        t = performance.now();
      }
      if (stats.documentsRead % 200 === 0)
        onProgress?.({
          docs: stats.documentsRead,
          bytes: stats.bytesRead,
          inputBytesDone: progress.inputBytesDone,
        });
    }
    timings.read += (performance.now() - t) / 1000;
    await flush();
  }
  t = performance.now();
  const info: PackInfo = { task: task.index, source: task.source, splits: {} };
  for (const split of ["train", "validation"] as const) {
    const r = await writers[split].finish({ carryOver: true });
    await writeAtomic(
      tailPath(plan.workDir, task.index, split),
      new Uint8Array(r.remainder.buffer, r.remainder.byteOffset, r.remainder.byteLength),
    );
    info.splits[split] = { files: r.files, documents: docs[split], tailTokens: r.remainder.length };
  }
  await writeAtomic(packInfoPath(plan.workDir, task.index), JSON.stringify(info));
  timings.write += (performance.now() - t) / 1000;
  stats.timings = timings;
  stats.badRecords = bad.count;
  stats.badRecordList = bad.entries;
  stats.extra = { trainDocuments: docs.train, validationDocuments: docs.validation };
  onProgress?.({
    docs: stats.documentsRead,
    bytes: stats.bytesRead,
    inputBytesDone: progress.inputBytesDone,
  });
  return stats;
}

async function finalizeTask(
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
  const removed: Record<string, number> = {};
  let documentsRead = 0;
  let bytesRead = 0;
  let badRecords = 0;
  for (const t of tasks) {
    const s = JSON.parse(
      await readFile(statsPath(plan.workDir, "pack", t.index), "utf8"),
    ) as TaskStats;
    documentsRead += s.documentsRead;
    bytesRead += s.bytesRead;
    badRecords += s.badRecords;
    for (const [k, v] of Object.entries(s.removed)) bump(removed, k, v);
  }
  const removedCount = Object.values(removed).reduce((a, b) => a + b, 0);
  const tok = tokOverride ?? (await loadPipelineTokenizer(cfg.tokenizer));
  const manifest: ShardManifest = {
    format: MANIFEST_FORMAT,
    source,
    blockSize: cfg.blockSize,
    chunkTokens: cfg.chunkTokens,
    dtype: "uint16",
    tokenizer: tok.identity,
    eosAppended: true,
    splits,
    stats: {
      documentsRead,
      bytesRead,
      removed,
      badRecords,
      documentsKept: documentsRead - removedCount,
    },
    config: { ...cfg, sources: cfg.sources.filter((s) => s.name === source) },
    createdAt: new Date().toISOString(),
  };
  const listed = new Set(Object.values(splits).flatMap((s) => s.files.map((f) => f.name)));
  const stale = (await readdir(outDir)).filter((n) => n.endsWith(".bin") && !listed.has(n));
  stats.extra = {
    staleFiles: stale.length,
    trainBlocks: splits.train?.blocks ?? 0,
    validationBlocks: splits.validation?.blocks ?? 0,
  };
  for (const name of stale) await rm(join(outDir, name), { force: true }); // leftovers of an earlier run with other settings
  await writeManifest(outDir, manifest);
  // the token spools were only needed by pack; the shards now hold their tokens
  for (const t of tasks) await removeTokenSpool(plan.workDir, t.index);
  stats.documentsRead = documentsRead;
  stats.bytesRead = bytesRead;
  stats.removed = removed;
  stats.badRecords = badRecords;
  return stats;
}
