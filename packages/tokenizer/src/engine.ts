/**
 * The BPE encoder: SentencePiece's algorithm on integer symbols.
 *
 * Design. SentencePiece BPE starts from one symbol per character and repeatedly merges the
 * adjacent pair whose concatenation is the best piece (lowest rank here), leftmost first on
 * ties. We keep that exact order but make it cheap:
 * - Characters map to symbol ids through a 64K table (BMP) or a small sorted table (astral).
 *   Characters that take part in no merge ("inert": newline, tab, most unknown characters)
 *   are emitted at once and cut the text, because no merge can span them.
 * - When no mergeable piece contains a non-space followed by a space mark (true for Llama: `▁`
 *   only leads pieces, or pieces are all `▁`), no merge can span the point just before a space
 *   mark that follows a non-space, so the text is cut there too. Each cut piece ("word") is
 *   merged alone, which gives the same result as merging the whole text: merges of different
 *   words never compete. Both properties are checked when the tables are built, not assumed.
 * - Pairs live in an open-addressing hash of (left, right) -> (rank, result) in typed arrays.
 * - Short words use an in-place scan (fastest for < ~32 symbols); long words (a 1 MB line
 *   without spaces) use a linked list plus a binary heap keyed by rank then position, so the
 *   work is O(n log n) instead of quadratic. Heap entries are validated lazily on pop.
 * - Short words are cached by their symbol ids (word-cache.ts: typed arrays, no string per
 *   word); the cache only stores results the algorithm computed from the same symbols, so it
 *   cannot change output.
 * - A model's USER_DEFINED pieces (none in Llama) are matched whole, longest first, before
 *   merging, on the normalised text, and cut the text like inert characters.
 *
 * This module imports only word-cache.ts so worker threads load it alone. Tables are typed
 * arrays (SharedArrayBuffer-backed when built for workers) so workers share one copy.
 */

import { WordCache } from "./word-cache.js";

export interface EngineTables {
  vocabSize: number;
  /** BMP code unit -> symbol id, or -1 when the character is not a symbol. */
  charSymbol: Int32Array;
  /** Sorted astral code points and their symbol ids. */
  astralCodes: Int32Array;
  astralSymbols: Int32Array;
  /** Per symbol id: 1 when the symbol takes part in at least one merge. */
  mergeable: Uint8Array;
  /** Code points of symbols at and above vocabSize (characters that are not pieces). */
  extraChars: Int32Array;
  /** Byte value -> id of its `<0xNN>` piece, or -1. */
  byteIds: Int32Array;
  /** Open-addressing pair hash (power-of-two size); empty slots have pairLeft = EMPTY. */
  pairLeft: Int32Array;
  pairRight: Int32Array;
  pairRank: Int32Array;
  pairResult: Int32Array;
  unkId: number;
  byteFallback: boolean;
  addDummyPrefix: boolean;
  escapeWhitespaces: boolean;
  removeExtraWhitespaces: boolean;
  /** Whether cutting before a space mark that follows a non-space is exact (checked). */
  splitBeforeSpace: boolean;
  /**
   * SentencePiece USER_DEFINED pieces: matched whole (longest first) in the normalised text
   * before merging, and never merged further.
   */
  userPieces: string[];
  userIds: Int32Array;
}

const EMPTY = -0x7fffffff;
const SPACE_MARK = 0x2581;
const SMALL_WORD = 32;
/** Scratch arrays above this many symbols are dropped after use. */
const LARGE_SCRATCH = 1 << 20;
const CACHE_MAX_WORD = 40;
/** Heap keys are rank * POSITION_RANGE + position; exact while below 2^53. */
const POSITION_RANGE = 2 ** 31;

export interface EngineInput {
  vocabSize: number;
  /** Code point of each symbol id (-1 for pieces that are not single characters). */
  symbolChars: Array<[codePoint: number, symbol: number]>;
  extraChars: number[];
  byteIds: Int32Array;
  mergeLeft: Int32Array;
  mergeRight: Int32Array;
  mergeRank: Int32Array;
  mergeResult: Int32Array;
  /** Text of each merge result, to check the space-cut property. */
  resultText: (id: number) => string;
  unkId: number;
  byteFallback: boolean;
  addDummyPrefix: boolean;
  escapeWhitespaces: boolean;
  removeExtraWhitespaces: boolean;
  userPieces: Array<[piece: string, id: number]>;
  shared: boolean;
}

function typed<T extends Int32Array | Uint8Array>(
  ctor: { new (b: ArrayBufferLike): T; BYTES_PER_ELEMENT: number },
  length: number,
  shared: boolean,
): T {
  const bytes = length * ctor.BYTES_PER_ELEMENT;
  return new ctor(shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
}

function pairSlot(left: number, right: number, shift: number): number {
  return Math.imul(left ^ Math.imul(right, 0x27d4eb2d), 0x9e3779b1) >>> shift;
}

export function buildEngineTables(input: EngineInput): EngineTables {
  const numSymbols = input.vocabSize + input.extraChars.length;
  const charSymbol = typed(Int32Array, 65536, input.shared).fill(-1);
  const astral: Array<[number, number]> = [];
  for (const [cp, sym] of input.symbolChars) {
    if (cp < 0x10000) {
      if (charSymbol[cp] === -1) charSymbol[cp] = sym;
    } else astral.push([cp, sym]);
  }
  astral.sort((a, b) => a[0] - b[0]);
  const astralCodes = typed(Int32Array, astral.length, input.shared);
  const astralSymbols = typed(Int32Array, astral.length, input.shared);
  astral.forEach(([cp, sym], i) => {
    astralCodes[i] = cp;
    astralSymbols[i] = sym;
  });

  const n = input.mergeLeft.length;
  let size = 1024;
  while (size < n * 3) size *= 2;
  const shift = 32 - Math.log2(size);
  const pairLeft = typed(Int32Array, size, input.shared).fill(EMPTY);
  const pairRight = typed(Int32Array, size, input.shared);
  const pairRank = typed(Int32Array, size, input.shared);
  const pairResult = typed(Int32Array, size, input.shared);
  const mergeable = typed(Uint8Array, numSymbols, input.shared);
  const spaceMark = input.escapeWhitespaces ? "\u2581" : " ";
  let splitBeforeSpace = true;
  for (let i = 0; i < n; i++) {
    const a = input.mergeLeft[i]!;
    const b = input.mergeRight[i]!;
    const rank = input.mergeRank[i]!;
    let h = pairSlot(a, b, shift);
    for (;;) {
      const k = pairLeft[h]!;
      if (k === EMPTY) {
        pairLeft[h] = a;
        pairRight[h] = b;
        pairRank[h] = rank;
        pairResult[h] = input.mergeResult[i]!;
        break;
      }
      if (k === a && pairRight[h] === b) {
        // A pair listed twice keeps its best rank, as in Hugging Face's merge map.
        if (rank < pairRank[h]!) {
          pairRank[h] = rank;
          pairResult[h] = input.mergeResult[i]!;
        }
        break;
      }
      h = (h + 1) & (size - 1);
    }
    mergeable[a] = 1;
    mergeable[b] = 1;
    if (
      splitBeforeSpace &&
      hasNonSpaceThenSpace(input.resultText(input.mergeResult[i]!), spaceMark)
    ) {
      splitBeforeSpace = false;
    }
  }
  return {
    vocabSize: input.vocabSize,
    charSymbol,
    astralCodes,
    astralSymbols,
    mergeable,
    extraChars: Int32Array.from(input.extraChars),
    byteIds: input.byteIds,
    pairLeft,
    pairRight,
    pairRank,
    pairResult,
    unkId: input.unkId,
    byteFallback: input.byteFallback,
    addDummyPrefix: input.addDummyPrefix,
    escapeWhitespaces: input.escapeWhitespaces,
    removeExtraWhitespaces: input.removeExtraWhitespaces,
    splitBeforeSpace,
    userPieces: input.userPieces.map(([p]) => p),
    userIds: Int32Array.from(input.userPieces.map(([, id]) => id)),
  };
}

function hasNonSpaceThenSpace(text: string, mark: string): boolean {
  for (let i = 1; i < text.length; i++) {
    if (text[i] === mark && text[i - 1] !== mark) return true;
  }
  return false;
}

/** Growable output of token ids. */
export class IdBuffer {
  ids = new Int32Array(1024);
  length = 0;

  push(id: number): void {
    if (this.length === this.ids.length) this.grow(this.length + 1);
    this.ids[this.length++] = id;
  }

  grow(min: number): void {
    let cap = this.ids.length * 2;
    while (cap < min) cap *= 2;
    const next = new Int32Array(cap);
    next.set(this.ids.subarray(0, this.length));
    this.ids = next;
  }
}

export class BpeEngine {
  readonly tables: EngineTables;
  private readonly charSymbol: Int32Array;
  private readonly mergeable: Uint8Array;
  private readonly pairLeft: Int32Array;
  private readonly pairRight: Int32Array;
  private readonly pairRank: Int32Array;
  private readonly pairResult: Int32Array;
  private readonly mask: number;
  private readonly shift: number;
  private readonly vocabSize: number;
  private readonly spaceCode: number;
  private readonly spaceSymbol: number;
  // Word scratch: symbols and, for short words, the rank/result of each adjacent pair.
  private word = new Int32Array(256);
  private wordLen = 0;
  private pairRankScratch = new Int32Array(SMALL_WORD);
  private pairResultScratch = new Int32Array(SMALL_WORD);
  // Long-word scratch: linked list and heap.
  private next = new Int32Array(0);
  private prev = new Int32Array(0);
  private heap = new Float64Array(0);
  private readonly cache = new WordCache();
  /** USER_DEFINED pieces by first UTF-16 unit, longest first. */
  private readonly userByFirst = new Map<number, Array<[string, number]>>();
  out = new IdBuffer();
  /** Pair-table lookups so far: a machine-independent measure of work (tests check linearity). */
  pairLookups = 0;

  constructor(tables: EngineTables) {
    this.tables = tables;
    this.charSymbol = tables.charSymbol;
    this.mergeable = tables.mergeable;
    this.pairLeft = tables.pairLeft;
    this.pairRight = tables.pairRight;
    this.pairRank = tables.pairRank;
    this.pairResult = tables.pairResult;
    this.mask = tables.pairLeft.length - 1;
    this.shift = 32 - Math.log2(tables.pairLeft.length);
    this.vocabSize = tables.vocabSize;
    this.spaceCode = tables.escapeWhitespaces ? SPACE_MARK : 32;
    this.spaceSymbol = this.symbolOf(this.spaceCode);
    tables.userPieces.forEach((piece, i) => {
      const first = piece.charCodeAt(0);
      const list = this.userByFirst.get(first) ?? [];
      list.push([piece, tables.userIds[i]!]);
      list.sort((a, b) => b[0].length - a[0].length);
      this.userByFirst.set(first, list);
    });
  }

  /** Symbol id of a code point, or -1. */
  symbolOf(cp: number): number {
    if (cp < 0x10000) return this.charSymbol[cp]!;
    const codes = this.tables.astralCodes;
    let lo = 0;
    let hi = codes.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = codes[mid]!;
      if (v === cp) return this.tables.astralSymbols[mid]!;
      if (v < cp) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Index of the (left, right) pair in the hash, or -1. */
  private findPair(left: number, right: number): number {
    const pairLeft = this.pairLeft;
    this.pairLookups++;
    let h = pairSlot(left, right, this.shift);
    for (;;) {
      const k = pairLeft[h]!;
      if (k === left && this.pairRight[h] === right) return h;
      if (k === EMPTY) return -1;
      h = (h + 1) & this.mask;
    }
  }

  /** Appends the ids of `text` (no BOS/EOS) to `this.out`. */
  encodeInto(input: string): void {
    const t = this.tables;
    let text = input;
    if (t.removeExtraWhitespaces) text = text.replace(/ +/g, " ").replace(/^ | $/g, "");
    if (text.length === 0) return;
    if (this.userByFirst.size === 0) {
      this.encodeNormalized(text, t.addDummyPrefix, t.escapeWhitespaces, false);
      return;
    }
    // With USER_DEFINED pieces, match on the normalised text as SentencePiece does (the dummy
    // prefix can be the first character of a match); the slower path costs one string copy.
    const mark = t.escapeWhitespaces ? "\u2581" : " ";
    const normalized =
      (t.addDummyPrefix ? mark : "") + (t.escapeWhitespaces ? text.replaceAll(" ", mark) : text);
    this.encodeNormalized(normalized, false, false, true);
  }

  /** Longest USER_DEFINED piece at text[i], as [length, id], or undefined. */
  private matchUserPiece(text: string, i: number): [number, number] | undefined {
    const list = this.userByFirst.get(text.charCodeAt(i));
    if (list === undefined) return undefined;
    for (const [piece, id] of list) if (text.startsWith(piece, i)) return [piece.length, id];
    return undefined;
  }

  private encodeNormalized(
    text: string,
    addDummyPrefix: boolean,
    mapSpaces: boolean,
    matchUser: boolean,
  ): void {
    const n = text.length;
    const charSymbol = this.charSymbol;
    const mergeable = this.mergeable;
    const spaceCode = this.spaceCode;
    const splitBeforeSpace = this.tables.splitBeforeSpace;
    this.wordLen = 0;
    let prevSpace = false;
    if (addDummyPrefix) {
      const sym = this.spaceSymbol;
      if (sym >= 0 && mergeable[sym] === 1) {
        this.word[0] = sym;
        this.wordLen = 1;
        prevSpace = true;
      } else this.emitChar(sym, spaceCode);
    }
    for (let i = 0; i < n; i++) {
      let c = text.charCodeAt(i);
      let sym: number;
      if (matchUser) {
        const hit = this.matchUserPiece(text, i);
        if (hit !== undefined) {
          // A frozen symbol: nothing merges across it, so it also ends the word.
          this.flushWord();
          this.out.push(hit[1]);
          i += hit[0] - 1;
          prevSpace = false;
          continue;
        }
      }
      if (c === 32 && mapSpaces) c = SPACE_MARK;
      if (c >= 0xd800 && c <= 0xdfff) {
        const lo = i + 1 < n ? text.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) {
          c = ((c - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
          i++;
          sym = this.symbolOf(c);
        } else {
          // A lone surrogate is not a character: treated as U+FFFD, as UTF-8 encoders do.
          c = 0xfffd;
          sym = charSymbol[c]!;
        }
      } else sym = charSymbol[c]!;
      if (sym < 0 || mergeable[sym] === 0) {
        this.flushWord();
        this.emitChar(sym, c);
        prevSpace = false;
        continue;
      }
      const isSpace = c === spaceCode;
      if (isSpace && !prevSpace && splitBeforeSpace) {
        this.flushWord();
      }
      prevSpace = isSpace;
      if (this.wordLen === this.word.length) {
        const grown = new Int32Array(this.word.length * 2);
        grown.set(this.word);
        this.word = grown;
      }
      this.word[this.wordLen++] = sym;
    }
    this.flushWord();
  }

  private emitChar(sym: number, cp: number): void {
    if (sym >= 0 && sym < this.vocabSize) this.out.push(sym);
    else this.emitFallback(cp);
  }

  private emitSymbol(sym: number): void {
    if (sym < this.vocabSize) this.out.push(sym);
    else this.emitFallback(this.tables.extraChars[sym - this.vocabSize]!);
  }

  /** A character that is not a piece: its UTF-8 bytes as `<0xNN>` pieces, or unk. */
  private emitFallback(cp: number): void {
    const t = this.tables;
    if (!t.byteFallback) {
      this.out.push(t.unkId);
      return;
    }
    const b = t.byteIds;
    if (cp < 0x80) this.out.push(b[cp]!);
    else if (cp < 0x800) {
      this.out.push(b[0xc0 | (cp >> 6)]!);
      this.out.push(b[0x80 | (cp & 63)]!);
    } else if (cp < 0x10000) {
      this.out.push(b[0xe0 | (cp >> 12)]!);
      this.out.push(b[0x80 | ((cp >> 6) & 63)]!);
      this.out.push(b[0x80 | (cp & 63)]!);
    } else {
      this.out.push(b[0xf0 | (cp >> 18)]!);
      this.out.push(b[0x80 | ((cp >> 12) & 63)]!);
      this.out.push(b[0x80 | ((cp >> 6) & 63)]!);
      this.out.push(b[0x80 | (cp & 63)]!);
    }
  }

  /** Merges the pending word and emits its ids. */
  private flushWord(): void {
    const m = this.wordLen;
    if (m === 0) return;
    this.wordLen = 0;
    if (m === 1) {
      this.emitSymbol(this.word[0]!);
      return;
    }
    if (m > CACHE_MAX_WORD) {
      this.mergeLarge(m);
      return;
    }
    const word = this.word;
    const cache = this.cache;
    let hash = 0x811c9dc5;
    for (let k = 0; k < m; k++) hash = Math.imul(hash ^ word[k]!, 0x01000193);
    let slot = cache.find(hash, word, m);
    const out = this.out;
    if (slot >= 0) {
      cache.copyValue(slot, out);
      return;
    }
    slot = cache.reserve(~slot, hash, word, m);
    const before = out.length;
    if (m <= SMALL_WORD) this.mergeSmall(m);
    else this.mergeLarge(m);
    cache.storeValue(slot, out.ids, before, out.length);
  }

  private mergeSmall(len: number): void {
    const word = this.word;
    const ranks = this.pairRankScratch;
    const results = this.pairResultScratch;
    let m = len;
    for (let k = 0; k + 1 < m; k++) this.scorePair(k);
    for (;;) {
      let best = 0x7fffffff;
      let at = -1;
      for (let k = 0; k + 1 < m; k++) {
        const r = ranks[k]!;
        if (r < best) {
          best = r;
          at = k;
        }
      }
      if (at < 0) break;
      word[at] = results[at]!;
      for (let k = at + 1; k + 1 < m; k++) {
        word[k] = word[k + 1]!;
        ranks[k] = ranks[k + 1]!;
        results[k] = results[k + 1]!;
      }
      m--;
      if (at > 0) this.scorePair(at - 1);
      if (at + 1 < m) this.scorePair(at);
      else ranks[at] = 0x7fffffff;
    }
    for (let k = 0; k < m; k++) this.emitSymbol(word[k]!);
  }

  private scorePair(k: number): void {
    const h = this.findPair(this.word[k]!, this.word[k + 1]!);
    if (h < 0) this.pairRankScratch[k] = 0x7fffffff;
    else {
      this.pairRankScratch[k] = this.pairRank[h]!;
      this.pairResultScratch[k] = this.pairResult[h]!;
    }
  }

  private mergeLarge(m: number): void {
    const word = this.word;
    if (this.next.length < m) {
      this.next = new Int32Array(m);
      this.prev = new Int32Array(m);
    }
    const next = this.next;
    const prev = this.prev;
    for (let k = 0; k < m; k++) {
      next[k] = k + 1 < m ? k + 1 : -1;
      prev[k] = k - 1;
    }
    let heapLen = 0;
    const push = (key: number): void => {
      if (heapLen === this.heap.length) {
        const grown = new Float64Array(Math.max(1024, this.heap.length * 2));
        grown.set(this.heap);
        this.heap = grown;
      }
      const heap = this.heap;
      let i = heapLen++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        const pk = heap[parent]!;
        if (pk <= key) break;
        heap[i] = pk;
        i = parent;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const heap = this.heap;
      const top = heap[0]!;
      const last = heap[--heapLen]!;
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= heapLen) break;
        if (child + 1 < heapLen && heap[child + 1]! < heap[child]!) child++;
        if (heap[child]! >= last) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
      return top;
    };
    const offer = (k: number): void => {
      const r = next[k]!;
      if (r < 0) return;
      const h = this.findPair(word[k]!, word[r]!);
      if (h >= 0) push(this.pairRank[h]! * POSITION_RANGE + k);
    };
    // Initial pairs: fill, then heapify bottom-up (O(n), cheaper than n pushes).
    if (this.heap.length < m) this.heap = new Float64Array(m);
    for (let k = 0; k + 1 < m; k++) {
      const h = this.findPair(word[k]!, word[k + 1]!);
      if (h >= 0) this.heap[heapLen++] = this.pairRank[h]! * POSITION_RANGE + k;
    }
    for (let start = (heapLen >> 1) - 1; start >= 0; start--) {
      const heap = this.heap;
      const key = heap[start]!;
      let i = start;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= heapLen) break;
        if (child + 1 < heapLen && heap[child + 1]! < heap[child]!) child++;
        if (heap[child]! >= key) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = key;
    }
    while (heapLen > 0) {
      const key = pop();
      const rank = Math.floor(key / POSITION_RANGE);
      const k = key - rank * POSITION_RANGE;
      if (word[k]! < 0) continue;
      const r = next[k]!;
      if (r < 0) continue;
      const h = this.findPair(word[k]!, word[r]!);
      // Stale entry: the pair at k changed since it was queued.
      if (h < 0 || this.pairRank[h] !== rank) continue;
      word[k] = this.pairResult[h]!;
      word[r] = -1;
      const after = next[r]!;
      next[k] = after;
      if (after >= 0) prev[after] = k;
      if (prev[k]! >= 0) offer(prev[k]!);
      offer(k);
    }
    for (let k = 0; k >= 0; k = next[k]!) this.emitSymbol(word[k]!);
    // Don't hold hundreds of MB of scratch after one giant word.
    if (m > LARGE_SCRATCH) {
      this.next = new Int32Array(0);
      this.prev = new Int32Array(0);
      this.heap = new Float64Array(0);
      this.word = new Int32Array(256);
    }
  }
}
