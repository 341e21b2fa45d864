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

/**
 * Both tables in one lookup for the fused signature pass: the lowercased (digit-folded) unit of
 * a word character (never 0), 0 for a separator, -1 for a unit that is a word by itself.
 */
let norm: Int32Array | undefined;
function normTable(): Int32Array {
  if (!norm) {
    const [cls, lower] = tables();
    norm = new Int32Array(65536);
    for (let c = 0; c < 65536; c++) {
      const k = cls[c] as number;
      norm[c] = k === 1 ? (lower[c] as number) : k === 2 ? -1 : 0;
      if (k === 1 && norm[c] === 0)
        throw new Error(`normalisation table: U+${c.toString(16)} lowers to 0`);
    }
  }
  return norm;
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
  private readonly binSeed: number;
  private readonly valSeed: number;
  /** The last `ngram` word hashes (ring buffer) of the fused one-pass signature. */
  private readonly recent: Uint32Array;
  // state of the fused pass over one document
  private words = 0;
  private slot = 0;
  private e1 = 0;
  private e2 = 0;

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
    this.binSeed = this.a[0] as number;
    this.valSeed = this.b[0] as number;
    this.recent = new Uint32Array(params.ngram);
  }

  /** The bands*rows minima of the shingle set (all 0xffffffff for an empty set). */
  minhashes(shingles: Uint32Array): Uint32Array {
    return this.params.scheme === "permutations"
      ? this.permutationMins(shingles)
      : this.ophMins(shingles);
  }

  private ophMins(shingles: Uint32Array): Uint32Array {
    const { mins, filled } = this;
    mins.fill(0xffffffff);
    filled.fill(0);
    for (let s = 0; s < shingles.length; s++) this.ophAdd(shingles[s] as number);
    if (shingles.length > 0) this.densify();
    return mins;
  }

  /** Puts one shingle hash into its one-permutation bin. */
  private ophAdd(x: number): void {
    const n = this.mins.length;
    const bin = Math.floor((mix32(x ^ this.binSeed) * n) / 4294967296);
    const v = mix32(x ^ this.valSeed);
    if (v < (this.mins[bin] as number)) this.mins[bin] = v;
    this.filled[bin] = 1;
  }

  /**
   * Optimal densification: an empty bin copies the bin chosen by a hash of (bin, attempt), the
   * same choice in every document, so equal bins stay equal with probability J.
   */
  private densify(): void {
    const { mins, filled, binSeed } = this;
    const n = mins.length;
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

  /**
   * The signature of one document. With one-permutation hashing this is a single pass over the
   * text's UTF-16 units: words are hashed as they end, each completed n-gram goes straight
   * into its bin and the exact-text hash is folded in, with no per-document arrays of words
   * or shingles. It computes exactly what `wordHashes` -> `shingleHashes` -> `minhashes` do
   * (the tests compare both paths).
   */
  signature(text: string): DocumentSignature {
    if (this.params.scheme === "permutations") return this.signatureOfWords(wordHashes(text));
    const norm = normTable();
    this.mins.fill(0xffffffff);
    this.filled.fill(0);
    this.words = 0;
    this.slot = 0;
    this.e1 = 0x2545f491;
    this.e2 = 0x6c8e9cf5;
    let h = 0;
    let inWord = false;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      const v = norm[c] as number;
      if (v > 0) {
        if (!inWord) {
          h = 0x811c9dc5;
          inWord = true;
        }
        h = Math.imul(h ^ v, 0x01000193);
      } else {
        if (inWord) {
          this.addWord(h >>> 0);
          inWord = false;
        }
        if (v < 0) this.addWord(Math.imul(0x811c9dc5 ^ c, 0x01000193) >>> 0);
      }
    }
    if (inWord) this.addWord(h >>> 0);
    const { words, recent } = this;
    const ngram = this.params.ngram;
    if (words > 0 && words < ngram) {
      // fewer words than n: one shingle of all of them
      let s = 0x9747b28c;
      for (let j = 0; j < words; j++)
        s = (Math.imul(s ^ (recent[j] as number), 0x9e3779b1) + j) | 0;
      this.ophAdd(mix32(s));
    }
    const shingles = words === 0 ? 0 : Math.max(1, words - ngram + 1);
    if (shingles > 0) this.densify();
    return {
      exact: [mix32(this.e1 ^ words), this.e2],
      bandKeys: this.bandKeys(this.mins),
      shingles,
      words,
    };
  }

  /** One more word of the fused pass: exact hash, ring buffer, and the n-gram it completes. */
  private addWord(w: number): void {
    this.e1 = mix32(this.e1 ^ w);
    this.e2 = mix32((this.e2 + w) ^ 0x27d4eb2d);
    const recent = this.recent;
    const ngram = recent.length;
    let slot = this.slot;
    recent[slot] = w;
    slot = slot + 1 === ngram ? 0 : slot + 1;
    this.slot = slot;
    if (++this.words < ngram) return;
    let s = 0x9747b28c;
    for (let j = 0; j < ngram; j++) {
      // from the oldest of the last n words (at `slot`) to the newest
      s = (Math.imul(s ^ (recent[slot] as number), 0x9e3779b1) + j) | 0;
      slot = slot + 1 === ngram ? 0 : slot + 1;
    }
    this.ophAdd(mix32(s));
  }

  /** The signature from a document's word hashes (the reference path: arrays in between). */
  signatureOfWords(words: Uint32Array): DocumentSignature {
    const shingles = shingleHashes(words, this.params.ngram);
    const mins = this.minhashes(shingles);
    let e1 = 0x2545f491;
    let e2 = 0x6c8e9cf5;
    for (let i = 0; i < words.length; i++) {
      const w = words[i] as number;
      e1 = mix32(e1 ^ w);
      e2 = mix32((e2 + w) ^ 0x27d4eb2d);
    }
    e1 = mix32(e1 ^ words.length);
    return {
      exact: [e1, e2],
      bandKeys: this.bandKeys(mins),
      shingles: shingles.length,
      words: words.length,
    };
  }

  /** A band's `rows` minima folded into one 64-bit key (two words). */
  private bandKeys(mins: Uint32Array): Uint32Array {
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
    return bandKeys;
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
