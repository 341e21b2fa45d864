/**
 * The training token stream of one rank: the mixture sampler picks each 2049-token block's
 * source, the source's block order picks the block, and each block is cut into
 * 2048 / seqLen windows of seqLen inputs and seqLen shifted targets (the whole block at
 * seqLen 2048, as in the reference: inputs block[:2048], targets block[1:2049]).
 *
 * State is O(1): the sampler state before the current block, the window index inside it and
 * per-source offsets carried over from earlier stages (so a continual stage does not re-read
 * the blocks the basic stage already used). Restoring re-reads one block, never replays.
 */
import {
  MixtureSampler,
  type MixtureSchedule,
  type MixtureState,
  SourceBlockOrder,
} from "@tinyllama/data/mixture";
import { BLOCK_SIZE, type SourceShards } from "./sources.js";

export const TRAIN_TOKENS_PER_BLOCK = BLOCK_SIZE - 1;

export interface StreamState {
  mixture: MixtureState;
  /** Windows of the current block already consumed (0: none, the block is not loaded). */
  window: number;
  /** Per-source blocks consumed by earlier stages: the first block index of this stage. */
  sourceOffsets: Record<string, number>;
  /** Blocks read per source in this stage (for reporting). */
  seqLen: number;
}

export interface StreamOptions {
  schedule: MixtureSchedule;
  seed: number;
  seqLen: number;
  rank?: number;
  worldSize?: number;
  sourceOffsets?: Record<string, number>;
  /** Token ids must be below this (the model's vocabulary); checked per block read. */
  vocabSize?: number;
}

export class TokenStream {
  readonly seqLen: number;
  readonly windowsPerBlock: number;
  private sampler: MixtureSampler;
  private readonly orders = new Map<string, SourceBlockOrder>();
  private readonly sources: Map<string, SourceShards>;
  private readonly block = new Uint16Array(BLOCK_SIZE);
  private mixtureBefore: MixtureState;
  private window: number;
  private readonly sourceOffsets: Record<string, number>;
  private readonly rank: number;
  private readonly worldSize: number;
  private readonly vocabSize: number | null;

  constructor(sources: Map<string, SourceShards>, opts: StreamOptions, restore?: StreamState) {
    const T = opts.seqLen;
    if (!Number.isInteger(T) || T < 1 || TRAIN_TOKENS_PER_BLOCK % T !== 0) {
      throw new Error(
        `sequence length ${T} must divide ${TRAIN_TOKENS_PER_BLOCK} (a 2049-token block trains on 2048 positions)`,
      );
    }
    this.seqLen = T;
    this.windowsPerBlock = TRAIN_TOKENS_PER_BLOCK / T;
    this.sources = sources;
    this.rank = opts.rank ?? 0;
    this.worldSize = opts.worldSize ?? 1;
    this.vocabSize = opts.vocabSize ?? null;
    const rankOpts = { rank: this.rank, worldSize: this.worldSize };
    if (restore) {
      if (restore.seqLen !== T) {
        throw new Error(
          `the checkpoint's data position is in windows of ${restore.seqLen} tokens; resume with --seq-len ${restore.seqLen}`,
        );
      }
      if (restore.window > 0 && this.worldSize > 1) {
        // Only one process stops part-way through a block. On W ranks only the rank drawing that
        // block could resume mid-block, and then no later step would end on a block boundary on
        // every rank: one saved position could not describe the ranks' reads, and data would be
        // skipped or repeated at the next resume.
        throw new Error(
          `the saved data position is ${restore.window} of ${this.windowsPerBlock} windows into a block (written by ` +
            `one process); ${this.worldSize} ranks read whole blocks, so it resumes on one process only, until a step ends on a block boundary`,
        );
      }
      this.sampler = MixtureSampler.restore(restore.mixture, rankOpts);
      this.sourceOffsets = { ...restore.sourceOffsets };
    } else {
      this.sampler = new MixtureSampler({ schedule: opts.schedule, seed: opts.seed, ...rankOpts });
      this.sourceOffsets = { ...(opts.sourceOffsets ?? {}) };
    }
    for (const name of this.sampler.sources) {
      const s = sources.get(name);
      if (!s) throw new Error(`mixture source "${name}" has no shards open`);
      this.orders.set(
        name,
        new SourceBlockOrder({ files: s.train.files, seed: opts.seed, name, ...rankOpts }),
      );
    }
    this.mixtureBefore = this.sampler.state();
    this.window = 0;
    if (restore && restore.window > 0) {
      this.loadNextBlock();
      this.window = restore.window;
    }
  }

  private loadNextBlock(): void {
    this.mixtureBefore = this.sampler.state();
    const pick = this.sampler.nextBlock();
    const order = this.orders.get(pick.source)!;
    const offset = this.sourceOffsets[pick.source] ?? 0;
    const ref = order.at(offset + pick.sourceBlock);
    this.sources.get(pick.source)!.train.readBlock(ref.fileIndex, ref.block, this.block);
    if (this.vocabSize !== null) {
      for (let i = 0; i < this.block.length; i++) {
        if (this.block[i]! >= this.vocabSize) {
          throw new Error(
            `shard ${ref.file} of source "${pick.source}", block ${ref.block}, holds token id ${this.block[i]} ` +
              `outside the model's vocabulary of ${this.vocabSize}: a corrupt shard or another tokenizer`,
          );
        }
      }
    }
  }

  /** Writes the next sequence's inputs and targets at `row` of [rows, seqLen] arrays. */
  next(ids: Int32Array, targets: Int32Array, row: number): void {
    if (this.window === 0 || this.window === this.windowsPerBlock) {
      this.loadNextBlock();
      this.window = 0;
    }
    const T = this.seqLen;
    const start = this.window * T;
    const o = row * T;
    for (let t = 0; t < T; t++) {
      ids[o + t] = this.block[start + t]!;
      targets[o + t] = this.block[start + t + 1]!;
    }
    this.window++;
  }

  state(): StreamState {
    const exhausted = this.window === 0 || this.window === this.windowsPerBlock;
    return {
      mixture: exhausted ? this.sampler.state() : this.mixtureBefore,
      window: exhausted ? 0 : this.window,
      sourceOffsets: { ...this.sourceOffsets },
      seqLen: this.seqLen,
    };
  }

  /** Per-source block offsets for the next stage: earlier offsets plus this stage's reads. */
  offsetsAfter(): Record<string, number> {
    const counts = this.sampler.realisedBlocks();
    const out = { ...this.sourceOffsets };
    for (const [name, n] of Object.entries(counts)) out[name] = (out[name] ?? 0) + n;
    return out;
  }

  /**
   * Sources the schedule expects to get less than one block of the stage's first `blocks`
   * global blocks, with their expectation: a stage that short may draw none of them.
   */
  underOneBlock(blocks: number): Record<string, number> {
    const expected = this.sampler.expectedBlocks(blocks);
    return Object.fromEntries(Object.entries(expected).filter(([, e]) => e > 0 && e < 1));
  }

  /** Blocks drawn per source in this stage against the schedule's expectation (for the log). */
  report(): string {
    const real = this.sampler.realisedBlocks();
    const expected = this.sampler.expectedBlocks();
    return Object.keys(real)
      .map((n) => `${n} ${real[n]} (expected ${(expected[n] ?? 0).toFixed(1)})`)
      .join(", ");
  }
}
