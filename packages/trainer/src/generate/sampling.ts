/**
 * Choosing the next token from one row of logits, in the order transformers applies its logits
 * warpers: temperature, then top-k, then top-p (nucleus: the smallest set of most probable
 * tokens whose probability reaches p, always at least one). Temperature 0 is greedy (argmax,
 * first index on ties, as torch.argmax). Sampling draws from a seeded host RNG, so the same
 * seed gives the same tokens on every backend that produces the same logits.
 */
import { Rng } from "../model/rng.js";

export interface SamplingOptions {
  /** 0 = greedy (default). */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of tokens with cumulative probability >= topP (1 = all). */
  topP?: number;
}

export function validateSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t))
    throw new Error(`temperature must be >= 0, got ${o.temperature}`);
  const k = o.topK ?? 0;
  if (!Number.isInteger(k) || k < 0) throw new Error(`topK must be an integer >= 0, got ${o.topK}`);
  const p = o.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new Error(`topP must be in (0, 1], got ${o.topP}`);
}

/**
 * Index of the largest value, first on ties, a NaN counting as the largest: torch.argmax, as
 * transformers' greedy search and the kernels' `argmax` op (which the device path uses).
 */
export function argmax(row: ArrayLike<number>, start = 0, end = row.length): number {
  let best = start;
  let max = Number.NEGATIVE_INFINITY;
  for (let j = start; j < end; j++) {
    const x = row[j]!;
    if (Number.isNaN(x)) return j - start;
    if (x > max) {
      max = x;
      best = j;
    }
  }
  return best - start;
}

export class TokenSampler {
  private readonly rng: Rng;
  /** The radix sort's buffers, kept across tokens (a row of 32,000 logits needs 512 KB). */
  private readonly sortScratch = new SortScratch();
  private readonly opts: Required<SamplingOptions>;

  constructor(opts: SamplingOptions, seed: number) {
    validateSampling(opts);
    this.opts = { temperature: opts.temperature ?? 0, topK: opts.topK ?? 0, topP: opts.topP ?? 1 };
    this.rng = new Rng(seed);
  }

  get greedy(): boolean {
    return this.opts.temperature === 0;
  }

  /** Picks a token from logits[offset .. offset + vocab). */
  next(logits: Float32Array, offset: number, vocab: number): number {
    if (this.greedy) return argmax(logits, offset, offset + vocab);
    const { temperature, topK, topP } = this.opts;
    const idx = sortedCandidates(logits, offset, vocab, this.sortScratch);
    if (idx.length === 0) throw new Error("sampling: every logit is NaN");
    let n = topK > 0 ? Math.min(topK, idx.length) : idx.length;
    // (logit - max) / T, not logit / T - max / T: with a tiny T the quotients overflow to
    // +-Infinity and Infinity - Infinity is NaN; this way the best token keeps exp(0) = 1. A
    // logit equal to the best is weighted 1 outright: an infinite best would otherwise give
    // Infinity - Infinity = NaN, and every candidate NaN weight sends the draw to the last one
    const top = logits[offset + idx[0]!]!;
    const probs = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const x = logits[offset + idx[i]!]!;
      const p = x === top ? 1 : Math.exp((x - top) / temperature);
      probs[i] = p;
      sum += p;
    }
    if (topP < 1) {
      let cum = 0;
      let keep = n;
      for (let i = 0; i < n; i++) {
        cum += probs[i]! / sum;
        if (cum >= topP) {
          keep = i + 1;
          break;
        }
      }
      n = keep;
      sum = 0;
      for (let i = 0; i < n; i++) sum += probs[i]!;
    }
    let u = this.rng.uniform() * sum;
    for (let i = 0; i < n; i++) {
      u -= probs[i]!;
      if (u <= 0) return idx[i]!;
    }
    return idx[n - 1]!;
  }
}

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/**
 * The indices of the non-NaN logits of one row, by logit descending and index ascending on
 * ties (+0 and -0 tie, as do equal infinities): the order the sampler walks, as a comparator
 * sort would give it. A stable LSD radix sort (four 8-bit passes) over 32-bit keys that order
 * the float32 logits descending, fed in index order, so ties keep index order. A comparator
 * sort over 32,000 numbers took 12-16 ms per token, which at batch 32 outweighed the model's
 * decode step (tools/bench/generate/sampler.mjs). With a `scratch` (a sampler keeps one) no
 * buffer is allocated per token; the result is then a view of it, valid until the next call.
 */
export function sortedCandidates(
  logits: Float32Array,
  offset: number,
  vocab: number,
  scratch = new SortScratch(),
): Int32Array {
  scratch.reserve(vocab);
  let { keys, idx, keys2, idx2 } = scratch;
  const count = scratch.count;
  let n = 0;
  for (let j = 0; j < vocab; j++) {
    const x = logits[offset + j]!;
    if (Number.isNaN(x)) continue;
    f32[0] = x === 0 ? 0 : x; // -0 as +0
    const u = f32Bits[0]!;
    // float bits -> unsigned ascending order (negatives flipped), then complemented: descending
    keys[n] = ~(u & 0x80000000 ? ~u : u | 0x80000000) >>> 0;
    idx[n++] = j;
  }
  for (let shift = 0; shift < 32; shift += 8) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[(keys[i]! >>> shift) & 255]!++;
    for (let b = 0, at = 0; b < 256; b++) {
      const c = count[b]!;
      count[b] = at;
      at += c;
    }
    for (let i = 0; i < n; i++) {
      const to = count[(keys[i]! >>> shift) & 255]!++;
      keys2[to] = keys[i]!;
      idx2[to] = idx[i]!;
    }
    [keys, keys2] = [keys2, keys];
    [idx, idx2] = [idx2, idx];
  }
  return idx.subarray(0, n);
}

/** Buffers of sortedCandidates, reused by a sampler; its result is valid until the next call. */
export class SortScratch {
  keys = new Uint32Array(0);
  idx = new Int32Array(0);
  keys2 = new Uint32Array(0);
  idx2 = new Int32Array(0);
  readonly count = new Int32Array(256);

  reserve(n: number): void {
    if (this.keys.length >= n) return;
    this.keys = new Uint32Array(n);
    this.idx = new Int32Array(n);
    this.keys2 = new Uint32Array(n);
    this.idx2 = new Int32Array(n);
  }
}
