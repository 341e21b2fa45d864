/**
 * signatures[t]: reads task t once: drops what the source definition filters, computes the
 * exact-text key and the MinHash band keys (one sorted file per band), and tokenizes every kept
 * document into the task's token spool, so no later stage reads the input again.
 */
import { writeSortedKeys } from "../dedup/files.js";
import { MinHasher } from "../dedup/minhash.js";
import { BadRecordLog } from "../document.js";
import type { Plan, PlannedTask } from "./plan.js";
import { readTaskDocuments } from "./read-docs.js";
import {
  bump,
  isValidation,
  newStats,
  type ProgressSink,
  sigPath,
  type TaskStats,
} from "./task-common.js";
import { TokenSpoolWriter } from "./token-spool.js";
import { loadPipelineTokenizer, type PipelineTokenizer } from "./tokenizer.js";

export async function signaturesTask(
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
  stats.tokenizer = tok.identity;
  const spool = await TokenSpoolWriter.open(plan.workDir, task.index);
  // Each document is tokenized straight into the spool's buffer (no id array per document),
  // but in runs of up to 1 MB of text rather than between parsing and MinHash of each
  // document, which measured slower (likely the tokenizer's tables leaving cache; bench --mb 30:
  // signatures 2.47 CPU-s interleaved per document vs 2.12 in runs; tools/bench/data/RESULTS.md).
  let pending: { docIndex: number; split: number; text: string }[] = [];
  let pendingChars = 0;
  let tAppend = 0;
  const appendPending = async () => {
    const t = performance.now();
    for (const p of pending) await spool.appendText(p.docIndex, p.split, p.text, tok);
    tAppend += performance.now() - t;
    pending = [];
    pendingChars = 0;
  };
  const bad = new BadRecordLog({ strict: cfg.strict });
  const hasher = new MinHasher(cfg.dedup.minhash);
  const bands = cfg.dedup.minhash.bands;
  const keys: number[][] = Array.from({ length: bands + 1 }, () => []);
  const progress = { inputBytesDone: 0, utf8Boms: 0 };
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
    pending.push({
      docIndex,
      split: isValidation(doc.id, cfg.validationFraction) ? 1 : 0,
      text: doc.text,
    });
    pendingChars += doc.text.length;
    if (pendingChars >= 1 << 20 || pending.length >= 512) await appendPending();
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
  await appendPending();
  // appendText's time is tokenizing except the spool's buffer flushes, which it counts
  const tFlushed = spool.writeSeconds * 1000;
  const tTokenize = tAppend - tFlushed;
  let tw = performance.now();
  await spool.close();
  const tSpool = tFlushed + performance.now() - tw;
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
  stats.rowsLost = bad.rowsLost;
  stats.bytesUnreadable = bad.bytesUnreadable;
  stats.badRecordList = bad.entries;
  if (progress.utf8Boms > 0) stats.extra.utf8BomsStripped = progress.utf8Boms;
  onProgress?.({
    docs: stats.documentsRead,
    bytes: stats.bytesRead,
    inputBytesDone: progress.inputBytesDone,
  });
  return stats;
}
