/**
 * pack[t]: drops the duplicates from task t's token spool (or, without dedup, reads and
 * tokenizes the input itself) and writes full LITPKDS chunks; the remainder becomes a tail.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { maxEncodedLength } from "@tinyllama/tokenizer";
import { REMOVE_EXACT } from "../dedup/cluster.js";
import { readRemoveList, writeAtomic } from "../dedup/files.js";
import { BadRecordLog } from "../document.js";
import { ShardWriter } from "../shards/shard-writer.js";
import type { Plan, PlannedTask } from "./plan.js";
import { readTaskDocuments } from "./read-docs.js";
import {
  bump,
  isValidation,
  newStats,
  type PackInfo,
  type ProgressSink,
  packInfoPath,
  removePath,
  statsPath,
  type TaskStats,
  tailPath,
} from "./task-common.js";
import { readTokenSpool } from "./token-spool.js";
import { assertUint16Ids, loadPipelineTokenizer, type PipelineTokenizer } from "./tokenizer.js";

export async function packTask(
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
  if (tok) assertUint16Ids(tok, "pack", "LITPKDS dtype 8");
  const loadSeconds = (performance.now() - tLoad) / 1000;
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
    loadTokenizer: loadSeconds, // the output directory's mkdir is not the tokenizer's
  };
  const progress = { inputBytesDone: 0, utf8Boms: 0 };
  let batch: { text: string; split: "train" | "validation" }[] = [];
  let batchBytes = 0;
  // A document's ids + EOS go into one reused Uint16Array, which the shard writer copies
  // natively; an Int32Array per document cost a range check per id there (2% of this path).
  let docIds = new Uint16Array(1 << 16);
  const flush = async () => {
    if (batch.length === 0) return;
    if (!tok) throw new Error("pack: no tokenizer");
    for (const { text, split } of batch) {
      const t0 = performance.now();
      const bound = maxEncodedLength(text.length);
      if (bound > docIds.length) docIds = new Uint16Array(bound);
      const n = tok.encodeInto(text, docIds, 0);
      const t1 = performance.now();
      await writers[split].add(docIds.subarray(0, n));
      docs[split]++;
      timings.tokenize += (t1 - t0) / 1000;
      timings.write += (performance.now() - t1) / 1000;
    }
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
    if (sig.tokenizer) stats.tokenizer = sig.tokenizer;
    bad.count = sig.badRecords;
    bad.rowsLost = sig.rowsLost ?? 0;
    bad.bytesUnreadable = sig.bytesUnreadable ?? 0;
    bad.entries.push(...sig.badRecordList);
    progress.utf8Boms = sig.extra.utf8BomsStripped ?? 0;
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
    if (tok) stats.tokenizer = tok.identity;
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
  stats.rowsLost = bad.rowsLost;
  stats.bytesUnreadable = bad.bytesUnreadable;
  stats.badRecordList = bad.entries;
  stats.extra = { trainDocuments: docs.train, validationDocuments: docs.validation };
  if (progress.utf8Boms > 0) stats.extra.utf8BomsStripped = progress.utf8Boms;
  onProgress?.({
    docs: stats.documentsRead,
    bytes: stats.bytesRead,
    inputBytesDone: progress.inputBytesDone,
  });
  return stats;
}
