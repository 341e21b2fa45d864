/**
 * ShardWriter: turns a stream of token runs (each document's tokens + EOS) into LITPKDS files
 * of `chunkTokens` tokens, named `<prefix>_<NNNNNNNNNN>.bin` as lit-gpt's builder names them.
 *
 * Never pads. `finish()` either writes the remaining whole blocks as one shorter last file and
 * drops (and counts) the partial block, or hands the unwritten tokens back so a later stage can
 * carry them over into another writer (how per-task tails are pooled without waste).
 */
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tempSuffix } from "../dedup/files.js";
import { DEFAULT_BLOCK_SIZE, DEFAULT_CHUNK_TOKENS, writeLitpkdsFile } from "./litpkds.js";
import { MANIFEST_FILE, type ShardFileEntry, type ShardManifest } from "./manifest.js";

export interface ShardWriterOptions {
  dir: string;
  /** File name prefix, e.g. "train_slimpajama"; files are `${prefix}_${index:010d}.bin`. */
  prefix: string;
  blockSize?: number;
  /** Tokens per file; must be a whole number of blocks. */
  chunkTokens?: number;
  /** First file index (lets several writers share a directory without clashing names). */
  firstIndex?: number;
}

export interface ShardWriterResult {
  files: ShardFileEntry[];
  tokens: number;
  blocks: number;
  /** Tokens neither written nor returned (a partial last block); 0 when carried over. */
  droppedTailTokens: number;
  /** Tokens handed back by finish({ carryOver: true }), else empty. */
  remainder: Uint16Array;
}

export class ShardWriter {
  readonly dir: string;
  readonly prefix: string;
  readonly blockSize: number;
  readonly chunkTokens: number;
  private buffer: Uint16Array;
  private fill = 0;
  private nextIndex: number;
  private readonly files: ShardFileEntry[] = [];
  private finished = false;

  constructor(options: ShardWriterOptions) {
    this.dir = options.dir;
    this.prefix = options.prefix;
    this.blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
    this.chunkTokens = options.chunkTokens ?? DEFAULT_CHUNK_TOKENS;
    if (!Number.isInteger(this.blockSize) || this.blockSize < 2) {
      throw new RangeError(`blockSize must be an integer >= 2, got ${this.blockSize}`);
    }
    if (
      !Number.isInteger(this.chunkTokens) ||
      this.chunkTokens <= 0 ||
      this.chunkTokens % this.blockSize !== 0
    ) {
      throw new RangeError(
        `chunkTokens (${this.chunkTokens}) must be a positive multiple of blockSize (${this.blockSize})`,
      );
    }
    this.nextIndex = options.firstIndex ?? 0;
    this.buffer = new Uint16Array(this.chunkTokens);
  }

  /** Appends tokens; writes a file each time a chunk fills. Ids must fit uint16. */
  async add(tokens: ArrayLike<number>): Promise<void> {
    if (this.finished) throw new Error("ShardWriter: add() after finish()");
    let i = 0;
    // uint16 input (the token spool) fits by construction: copy whole runs natively
    const checked = !(tokens instanceof Uint16Array);
    while (i < tokens.length) {
      const n = Math.min(tokens.length - i, this.chunkTokens - this.fill);
      if (!checked) {
        this.buffer.set((tokens as Uint16Array).subarray(i, i + n), this.fill);
        this.fill += n;
        i += n;
        if (this.fill === this.chunkTokens) await this.flush(this.chunkTokens);
        continue;
      }
      for (let k = 0; k < n; k++) {
        const t = tokens[i + k] as number;
        if (!(t >= 0 && t <= 0xffff && Number.isInteger(t))) {
          throw new RangeError(`token id ${t} does not fit uint16 (LITPKDS dtype 8)`);
        }
        this.buffer[this.fill + k] = t;
      }
      this.fill += n;
      i += n;
      if (this.fill === this.chunkTokens) await this.flush(this.chunkTokens);
    }
  }

  /** Tokens accepted but not yet in a file. */
  get pendingTokens(): number {
    return this.fill;
  }

  private async flush(count: number): Promise<void> {
    const name = `${this.prefix}_${String(this.nextIndex).padStart(10, "0")}.bin`;
    this.nextIndex++;
    const w = await writeLitpkdsFile(join(this.dir, name), this.buffer.subarray(0, count));
    this.files.push({
      name,
      sha256: w.sha256,
      bytes: w.bytes,
      tokens: count,
      blocks: count / this.blockSize,
    });
    this.buffer.copyWithin(0, count, this.fill);
    this.fill -= count;
  }

  /**
   * Ends the stream. Default: remaining whole blocks go into one last (shorter) file and the
   * partial block is dropped and counted. With `carryOver`, nothing more is written and the
   * pending tokens are returned in `remainder`.
   */
  async finish(options: { carryOver?: boolean } = {}): Promise<ShardWriterResult> {
    if (this.finished) throw new Error("ShardWriter: finish() called twice");
    this.finished = true;
    let dropped = 0;
    let remainder = new Uint16Array(0);
    if (options.carryOver) {
      remainder = this.buffer.slice(0, this.fill);
      this.fill = 0;
    } else {
      const whole = this.fill - (this.fill % this.blockSize);
      dropped = this.fill - whole;
      if (whole > 0) await this.flush(whole);
      this.fill = 0;
    }
    const tokens = this.files.reduce((a, f) => a + f.tokens, 0);
    return {
      files: [...this.files],
      tokens,
      blocks: tokens / this.blockSize,
      droppedTailTokens: dropped,
      remainder,
    };
  }
}

/** Writes manifest.json atomically (the last thing a pipeline writes: its presence means done). */
export async function writeManifest(dir: string, manifest: ShardManifest): Promise<void> {
  const path = join(dir, MANIFEST_FILE);
  const tmp = `${path}${tempSuffix()}`;
  await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(tmp, path);
}
