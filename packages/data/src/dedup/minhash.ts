/**
 * Text normalisation, shingling and MinHash-LSH signatures.
 *
 * Normalisation follows datatrove: lowercase, digits -> 0, punctuation and whitespace dropped
 * (they only separate words). Words are runs of letters/digits; each Han/kana character is a
 * word of its own, so Chinese text (SkyPile, no spaces) gets meaningful shingles too.
 * Shingles are word n-grams (default 5), hashed to 32 bits from per-word FNV-1a hashes.
 *
 * MinHash uses `bands * rows` hash functions h_i(x) = mix(a_i * (x ^ b_i)) over 32 bits, with
 * a_i, b_i drawn from a seeded PRNG: fixed params give the same signature on every machine.
 * A band's `rows` minima are folded into one 64-bit key (two 32-bit words); two documents are
 * candidates when any band key is equal. An extra "exact" key, a 64-bit hash of the whole
 * normalised word sequence, catches exact duplicates through the same machinery.
 */

export interface MinHashParams {
  /** Word n-gram size. */
  ngram: number;
  bands: number;
  rows: number;
  seed: number;
  /**
   * "oph" (default): one-permutation hashing with optimal densification (Li et al. 2012,
   * Shrivastava 2017): each shingle is hashed once into one of bands*rows bins, O(shingles).
   * "permutations": classic k independent hash functions, O(shingles * k), about 10x slower.
   * Both estimate Jaccard without bias; tools/bench/data/dedup-quality.mjs compares them.
   */
  scheme?: "oph" | "permutations";
}

/**
 * 9 bands x 13 rows (117 hashes), word 5-grams, one-permutation hashing: the band/row split
 * SlimPajama and text-dedup use for Jaccard 0.8. On the labelled pairs of
 * tools/bench/data/dedup-quality.mjs it gives recall 0.96 for pairs with J >= 0.85 and
 * precision 0.96 against J >= 0.8; datatrove's 14 x 8 catches everything above 0.85 but flags
 * most pairs in [0.7, 0.8) (precision 0.83). See the README for the S-curve.
 */
export const DEFAULT_MINHASH: MinHashParams = {
  ngram: 5,
  bands: 9,
  rows: 13,
  seed: 1,
  scheme: "oph",
};

/** Probability that a pair with Jaccard `j` shares at least one band: 1 - (1 - j^r)^b. */
export function collisionProbability(j: number, p: Pick<MinHashParams, "bands" | "rows">): number {
  return 1 - (1 - j ** p.rows) ** p.bands;
}

/**
 * Per-UTF-16-unit classification and lowercase, built once (64K entries): 0 = separator,
 * 1 = word character, 2 = a word by itself (Han, kana). A table lookup per character is about
 * 10x faster than a Unicode-property regex over the text.
 */
let charClass: Uint8Array | undefined;
let lowerOf: Uint16Array | undefined;
function tables(): [Uint8Array, Uint16Array] {
  if (!charClass || !lowerOf) {
    charClass = new Uint8Array(65536);
    lowerOf = new Uint16Array(65536);
    const wordChar = /[\p{L}\p{N}\p{M}]/u;
    const single = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
    for (let c = 0; c < 65536; c++) {
      lowerOf[c] = c;
      if (c >= 0xd800 && c <= 0xdfff) continue; // surrogates: astral symbols separate words
      const ch = String.fromCharCode(c);
      if (single.test(ch)) charClass[c] = 2;
      else if (wordChar.test(ch)) charClass[c] = 1;
      const low = ch.toLowerCase();
      if (low.length === 1) lowerOf[c] = low.charCodeAt(0);
      if (c >= 48 && c <= 57) lowerOf[c] = 48; // digits fold to 0
    }
  }
  return [charClass, lowerOf];
}

/** 32-bit FNV-1a of each normalised word (lowercased, digits folded to 0). */
export function wordHashes(text: string): Uint32Array {
  const [cls, lower] = tables();
  let out = new Uint32Array(Math.max(16, text.length >> 2));
  let n = 0;
  let h = 0;
  let inWord = false;
  const push = (v: number) => {
    if (n === out.length) {
      const bigger = new Uint32Array(out.length * 2);
      bigger.set(out);
      out = bigger;
    }
    out[n++] = v >>> 0;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const k = cls[c] as number;
    if (k === 1) {
      if (!inWord) {
        h = 0x811c9dc5;
        inWord = true;
      }
      h = Math.imul(h ^ (lower[c] as number), 0x01000193);
    } else {
      if (inWord) {
        push(h);
        inWord = false;
      }
      if (k === 2) push(Math.imul(0x811c9dc5 ^ c, 0x01000193));
    }
  }
  if (inWord) push(h);
  return out.slice(0, n);
}

function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes of the word n-grams of `words` (one hash if fewer than n words, none if empty). */
export function shingleHashes(words: Uint32Array, n: number): Uint32Array {
  if (words.length === 0) return new Uint32Array(0);
  const count = Math.max(1, words.length - n + 1);
  const width = Math.min(n, words.length);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    let h = 0x9747b28c;
    for (let k = 0; k < width; k++) h = Math.imul(h ^ (words[i + k] as number), 0x9e3779b1) + k;
    out[i] = mix32(h);
  }
  return out;
}

/** Deterministic PRNG (mulberry32) for the permutation parameters. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export interface DocumentSignature {
  /** 64-bit hash of the normalised text as [hi, lo]. */
  exact: [number, number];
  /** bands x 2 words: band keys. */
  bandKeys: Uint32Array;
  /** Number of shingles (0 for a document with no words). */
  shingles: number;
  /** Number of normalised words. */
  words: number;
}

export class MinHasher {
  readonly params: MinHashParams;
  private readonly a: Uint32Array;
  private readonly b: Uint32Array;
  private readonly mins: Uint32Array;
  private readonly filled: Uint8Array;
  private readonly scratch: Uint32Array;

  constructor(params: MinHashParams = DEFAULT_MINHASH) {
    for (const k of ["ngram", "bands", "rows"] as const) {
      if (!Number.isInteger(params[k]) || params[k] < 1)
        throw new RangeError(`minhash ${k} must be a positive integer, got ${params[k]}`);
    }
    this.params = params;
    const n = params.bands * params.rows;
    const rand = mulberry32(params.seed);
    this.a = new Uint32Array(n);
    this.b = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      this.a[i] = rand() | 1;
      this.b[i] = rand();
    }
    this.mins = new Uint32Array(n);
    this.filled = new Uint8Array(n);
    this.scratch = new Uint32Array(n);
  }

  /** The bands*rows minima of the shingle set (all 0xffffffff for an empty set). */
  minhashes(shingles: Uint32Array): Uint32Array {
    return this.params.scheme === "permutations"
      ? this.permutationMins(shingles)
      : this.ophMins(shingles);
  }

  private ophMins(shingles: Uint32Array): Uint32Array {
    const { mins } = this;
    const n = mins.length;
    mins.fill(0xffffffff);
    const filled = this.filled;
    filled.fill(0);
    const binSeed = this.a[0] as number;
    const valSeed = this.b[0] as number;
    for (let s = 0; s < shingles.length; s++) {
      const x = shingles[s] as number;
      const bin = Math.floor((mix32(x ^ binSeed) * n) / 4294967296);
      const v = mix32(x ^ valSeed);
      if (v < (mins[bin] as number)) mins[bin] = v;
      filled[bin] = 1;
    }
    if (shingles.length === 0) return mins;
    // optimal densification: an empty bin copies the bin chosen by a hash of (bin, attempt),
    // the same choice in every document, so equal bins stay equal with probability J
    const src = this.scratch;
    src.set(mins);
    for (let j = 0; j < n; j++) {
      if (filled[j]) continue;
      for (let attempt = 1; ; attempt++) {
        const k = Math.floor(
          (mix32(Math.imul(j + 1, 0x9e3779b1) ^ Math.imul(attempt, 0x85ebca6b) ^ binSeed) * n) /
            4294967296,
        );
        if (filled[k]) {
          mins[j] = mix32((src[k] as number) ^ attempt);
          break;
        }
      }
    }
    return mins;
  }

  private permutationMins(shingles: Uint32Array): Uint32Array {
    const { a, b, mins } = this;
    const n = mins.length;
    mins.fill(0xffffffff);
    for (let s = 0; s < shingles.length; s++) {
      const x = shingles[s] as number;
      for (let i = 0; i < n; i++) {
        let h = Math.imul(x ^ (b[i] as number), a[i] as number);
        h = (h ^ (h >>> 15)) >>> 0;
        if (h < (mins[i] as number)) mins[i] = h;
      }
    }
    return mins;
  }

  signature(text: string): DocumentSignature {
    const words = wordHashes(text);
    const shingles = shingleHashes(words, this.params.ngram);
    const mins = this.minhashes(shingles);
    const { bands, rows } = this.params;
    const bandKeys = new Uint32Array(bands * 2);
    for (let band = 0; band < bands; band++) {
      let h1 = 0x12345678 ^ band;
      let h2 = 0x9e3779b9 ^ band;
      for (let r = 0; r < rows; r++) {
        const v = mins[band * rows + r] as number;
        h1 = mix32(h1 ^ v);
        h2 = mix32((h2 + v) ^ 0x5bd1e995);
      }
      bandKeys[band * 2] = h1;
      bandKeys[band * 2 + 1] = h2;
    }
    let e1 = 0x2545f491;
    let e2 = 0x6c8e9cf5;
    for (let i = 0; i < words.length; i++) {
      const w = words[i] as number;
      e1 = mix32(e1 ^ w);
      e2 = mix32((e2 + w) ^ 0x27d4eb2d);
    }
    e1 = mix32(e1 ^ words.length);
    return { exact: [e1, e2], bandKeys, shingles: shingles.length, words: words.length };
  }
}

/** Exact Jaccard similarity of two shingle sets (brute force, for measuring quality). */
export function jaccard(a: Uint32Array, b: Uint32Array): number {
  const sa = new Set(a);
  const sb = new Set(b);
  if (sa.size === 0 && sb.size === 0) return 1;
  let inter = 0;
  for (const x of sa) if (sb.has(x)) inter++;
  return inter / (sa.size + sb.size - inter);
}
