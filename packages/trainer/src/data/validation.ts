/**
 * Validation micro-batches from the held-out split of each source of a stage: windows of the
 * first blocks of every validation split, sources interleaved, cycling when a split is small
 * (a one-block split still works: the reference run crashed on small validation sets).
 */

import type { SourceShards } from "./sources.js";
import { TRAIN_TOKENS_PER_BLOCK } from "./stream.js";

export interface ValidationBatches {
  batches: number;
  fill: (i: number, ids: Int32Array, targets: Int32Array) => void;
}

export function validationBatches(
  sources: Map<string, SourceShards>,
  vocabSize: number,
  seqLen: number,
  microBatch: number,
  batches: number,
): ValidationBatches | null {
  const sets = [...sources.values()].flatMap((s) => (s.validation ? [s.validation] : []));
  if (sets.length === 0 || batches <= 0) return null;
  const windows = TRAIN_TOKENS_PER_BLOCK / seqLen;
  const block = new Uint16Array(2049);
  return {
    batches,
    fill(i, ids, targets) {
      for (let row = 0; row < microBatch; row++) {
        const seq = i * microBatch + row;
        const set = sets[seq % sets.length]!;
        const local = Math.floor(seq / sets.length);
        const b = Math.floor(local / windows) % set.numBlocks;
        const w = local % windows;
        set.readGlobalBlock(b, block);
        const bad = block.findIndex((id) => id >= vocabSize);
        if (bad !== -1) {
          throw new Error(
            `validation block ${b} of ${set.dir} holds token id ${block[bad]} outside the model's vocabulary of ${vocabSize}`,
          );
        }
        for (let t = 0; t < seqLen; t++) {
          ids[row * seqLen + t] = block[w * seqLen + t]!;
          targets[row * seqLen + t] = block[w * seqLen + t + 1]!;
        }
      }
    },
  };
}
