/**
 * SourceBlockOrder: the order in which one source's blocks are read, epoch after epoch.
 *
 * From a manifest's file list: sort the files by name (code-unit order, so every machine
 * agrees whatever its glob or locale), number their blocks 0..N-1 in that order, then in epoch
 * e read position p as block perm_e(p), where perm_e is a keyed Feistel permutation of [0, N)
 * that depends only on (seed, source name, e). Every rank computes the same permutation, and
 * only then is the stream split between ranks: the opposite of the reference run's bug, where
 * each rank shuffled with its own seed before sharding so some files were read twice and
 * others never. Each epoch reshuffles (a new key), and every block appears exactly once per
 * epoch. Shuffling at block level mixes documents from all files; reads are 4 KB preads.
 *
 * Two ways to consume it:
 *  - `at(i)`: the i-th block of the global per-source stream (epoch = floor(i / N)), O(1).
 *    With a MixtureSampler, call `order.at(pick.sourceBlock)`: the sampler already gives each
 *    rank disjoint indices.
 *  - `next()`: rank r of W reads global indices r, r + W, r + 2W, ... (for a single-source
 *    stage or a validation split). `state()` is the global index of the next round, the same on
 *    every rank after the same number of calls; restore under any W continues the stream.
 */
import { checkSeed, deriveKey, digestHex, type Key } from "./hash.js";
import { FeistelPermutation, MAX_PERMUTATION_SIZE } from "./permutation.js";
import { checkRank, type RankOptions } from "./sampler.js";

export const BLOCK_ORDER_STATE_FORMAT = "tinyllama-block-order/1";

/** A shard file as listed in a manifest (extra fields such as sha256 are ignored). */
export interface ShardFileBlocks {
  name: string;
  blocks: number;
}

export interface SourceBlockOrderOptions extends RankOptions {
  files: readonly ShardFileBlocks[];
  seed: number | string;
  /** Source name, mixed into the key so two sources with one seed shuffle differently. */
  name?: string;
}

export interface BlockRef {
  /** File name, as listed in the manifest. */
  file: string;
  /** Index of that file in the `files` array passed in (manifest order, not sorted order). */
  fileIndex: number;
  /** Block index inside the file. */
  block: number;
  /** 0-based pass over the source this read belongs to. */
  epoch: number;
  /** Index in the global per-source stream. */
  index: number;
}

export interface BlockOrderState {
  format: typeof BLOCK_ORDER_STATE_FORMAT;
  seed: number | string;
  name: string;
  /** Digest of the sorted (file, blocks) list: restoring against another manifest is refused. */
  filesDigest: string;
  totalBlocks: number;
  /** Global index of the next round (all ranks together). */
  cursor: number;
}

export class BlockOrderError extends Error {
  override name = "BlockOrderError";
}

export class SourceBlockOrder {
  readonly seed: number | string;
  readonly name: string;
  readonly rank: number;
  readonly worldSize: number;
  /** Total blocks per epoch. */
  readonly totalBlocks: number;
  /** Files with no blocks: listed in the manifest, never read. */
  readonly emptyFiles: readonly string[];
  readonly filesDigest: string;
  private readonly sortedNames: string[];
  private readonly sortedToInput: number[];
  private readonly sortedBlocks: number[];
  /** firstBlock[i]: global number of sorted file i's first block. */
  private readonly firstBlock: number[];
  private readonly key: Key;
  private permEpoch = -1;
  private perm: FeistelPermutation | undefined;
  private cursor = 0;

  constructor(options: SourceBlockOrderOptions) {
    const where = "SourceBlockOrder";
    if (typeof options !== "object" || options === null || !Array.isArray(options.files)) {
      throw new TypeError(`${where}: expected options { files: [{ name, blocks }], seed }`);
    }
    this.seed = checkSeed(options.seed, where);
    this.name = options.name ?? "";
    if (typeof this.name !== "string") throw new TypeError(`${where}: name must be a string`);
    [this.rank, this.worldSize] = checkRank(options, where);
    const seen = new Set<string>();
    options.files.forEach((f, i) => {
      if (typeof f !== "object" || f === null || typeof f.name !== "string" || f.name === "") {
        throw new BlockOrderError(`${where}: files[${i}] needs a non-empty string name`);
      }
      if (!Number.isSafeInteger(f.blocks) || f.blocks < 0) {
        throw new BlockOrderError(
          `${where}: files[${i}] (${f.name}) has blocks ${JSON.stringify(f.blocks)}; expected an integer >= 0`,
        );
      }
      if (seen.has(f.name)) throw new BlockOrderError(`${where}: file ${f.name} is listed twice`);
      seen.add(f.name);
    });
    const order = options.files.map((_, i) => i);
    order.sort((a, b) => {
      const x = options.files[a]!.name;
      const y = options.files[b]!.name;
      return x < y ? -1 : x > y ? 1 : 0;
    });
    this.sortedNames = [];
    this.sortedToInput = [];
    this.sortedBlocks = [];
    this.firstBlock = [];
    const empty: string[] = [];
    let total = 0;
    for (const i of order) {
      const f = options.files[i]!;
      if (f.blocks === 0) {
        empty.push(f.name);
        continue;
      }
      this.sortedNames.push(f.name);
      this.sortedToInput.push(i);
      this.sortedBlocks.push(f.blocks);
      this.firstBlock.push(total);
      total += f.blocks;
    }
    if (total === 0) {
      throw new BlockOrderError(
        `${where}${this.name ? ` (${this.name})` : ""}: no blocks to read (${options.files.length} files, all empty)`,
      );
    }
    if (total > MAX_PERMUTATION_SIZE)
      throw new BlockOrderError(`${where}: ${total} blocks exceed 2^52`);
    this.totalBlocks = total;
    this.emptyFiles = empty;
    this.filesDigest = digestHex(
      this.sortedNames.map((n, i) => `${n}\u0000${this.sortedBlocks[i]}`).join("\u0001"),
    );
    this.key = deriveKey(this.seed, "block-order", this.name);
  }

  static restore(
    state: BlockOrderState,
    options: Omit<SourceBlockOrderOptions, "seed" | "name">,
  ): SourceBlockOrder {
    if (typeof state !== "object" || state === null || state.format !== BLOCK_ORDER_STATE_FORMAT) {
      throw new BlockOrderError(
        `block order state: format is ${JSON.stringify((state as { format?: unknown } | null)?.format)}, expected ${JSON.stringify(BLOCK_ORDER_STATE_FORMAT)}`,
      );
    }
    if (!Number.isSafeInteger(state.cursor) || state.cursor < 0) {
      throw new BlockOrderError("block order state: cursor must be a non-negative integer");
    }
    const order = new SourceBlockOrder({ ...options, seed: state.seed, name: state.name });
    if (order.filesDigest !== state.filesDigest || order.totalBlocks !== state.totalBlocks) {
      throw new BlockOrderError(
        `block order state${state.name ? ` (${state.name})` : ""}: the file list changed since the state was saved ` +
          `(${state.totalBlocks} blocks, digest ${state.filesDigest}; now ${order.totalBlocks} blocks, digest ${order.filesDigest}). ` +
          "Resume against the manifest the run started with.",
      );
    }
    order.cursor = state.cursor;
    return order;
  }

  /** The i-th block of the global per-source stream. */
  at(index: number): BlockRef {
    if (!Number.isSafeInteger(index) || index < 0) {
      throw new RangeError(
        `SourceBlockOrder.at: index must be a non-negative integer, got ${index}`,
      );
    }
    const epoch = Math.floor(index / this.totalBlocks);
    const position = index - epoch * this.totalBlocks;
    const global = this.permutation(epoch).apply(position);
    const f = this.fileOf(global);
    return {
      file: this.sortedNames[f]!,
      fileIndex: this.sortedToInput[f]!,
      block: global - this.firstBlock[f]!,
      epoch,
      index,
    };
  }

  /** This rank's next block (global indices rank, rank + W, ...). */
  next(): BlockRef {
    const ref = this.at(this.cursor + this.rank);
    this.cursor += this.worldSize;
    return ref;
  }

  /** Epoch of the next round. */
  get epoch(): number {
    return Math.floor(this.cursor / this.totalBlocks);
  }

  /** Global index of the next round (blocks consumed by all ranks together). */
  get position(): number {
    return this.cursor;
  }

  state(): BlockOrderState {
    return {
      format: BLOCK_ORDER_STATE_FORMAT,
      seed: this.seed,
      name: this.name,
      filesDigest: this.filesDigest,
      totalBlocks: this.totalBlocks,
      cursor: this.cursor,
    };
  }

  private permutation(epoch: number): FeistelPermutation {
    if (epoch !== this.permEpoch || !this.perm) {
      const [a, b] = this.key;
      this.perm = new FeistelPermutation(this.totalBlocks, deriveKey(a, b, epoch));
      this.permEpoch = epoch;
    }
    return this.perm;
  }

  /** Sorted-file index holding global block g (binary search on first blocks). */
  private fileOf(g: number): number {
    let lo = 0;
    let hi = this.firstBlock.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firstBlock[mid]! <= g) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
