/**
 * Cache of merged words for the BPE engine, keyed by the word's symbol ids (not its text, so
 * no string is allocated per word). Exact by construction: a word's ids depend only on its
 * symbols, and only results the engine computed are stored.
 */

/** Where cached ids are appended: the engine's growable output buffer. */
export interface IdSink {
  ids: Int32Array;
  length: number;
  grow(min: number): void;
}

const CACHE_SLOTS = 1 << 17;
const CACHE_MAX_ENTRIES = CACHE_SLOTS >> 1;
const CACHE_POOL = 1 << 20;

/**
 * Open-addressing cache from a word's symbol ids to its token ids. Keys and values live in two
 * Int32Array pools; when the table is half full or a pool is exhausted everything is dropped
 * at once (cheap, and frequent words come straight back).
 */
export class WordCache {
  private readonly slotHash = new Int32Array(CACHE_SLOTS);
  private readonly slotKey = new Int32Array(CACHE_SLOTS).fill(-1);
  private readonly slotKeyLen = new Int32Array(CACHE_SLOTS);
  private readonly slotValue = new Int32Array(CACHE_SLOTS);
  private readonly slotValueLen = new Int32Array(CACHE_SLOTS);
  private readonly keys = new Int32Array(CACHE_POOL);
  private readonly values = new Int32Array(CACHE_POOL);
  private keysUsed = 0;
  private valuesUsed = 0;
  private entries = 0;

  /** The slot holding this word, or ~(the free slot where it would go). */
  find(hash: number, word: Int32Array, m: number): number {
    const mask = CACHE_SLOTS - 1;
    let h = hash & mask;
    for (;;) {
      const key = this.slotKey[h]!;
      if (key < 0) return ~h;
      if (this.slotHash[h] === hash && this.slotKeyLen[h] === m) {
        const keys = this.keys;
        let k = 0;
        while (k < m && keys[key + k] === word[k]) k++;
        if (k === m) return h;
      }
      h = (h + 1) & mask;
    }
  }

  /** Claims a slot for a word about to be merged (copies its symbols first: merging mutates them). */
  reserve(free: number, hash: number, word: Int32Array, m: number): number {
    let slot = free;
    // A word of m symbols yields at most 4m ids (4 UTF-8 bytes per character).
    if (
      this.entries >= CACHE_MAX_ENTRIES ||
      this.keysUsed + m > CACHE_POOL ||
      this.valuesUsed + 4 * m > CACHE_POOL
    ) {
      this.slotKey.fill(-1);
      this.keysUsed = 0;
      this.valuesUsed = 0;
      this.entries = 0;
      slot = hash & (CACHE_SLOTS - 1);
    }
    // a loop, not keys.set(word.subarray(...)): words are a few symbols, and a subarray is an
    // allocation per cache miss
    const keys = this.keys;
    const at = this.keysUsed;
    for (let k = 0; k < m; k++) keys[at + k] = word[k]!;
    this.slotHash[slot] = hash;
    this.slotKey[slot] = this.keysUsed;
    this.slotKeyLen[slot] = m;
    this.keysUsed += m;
    this.entries++;
    return slot;
  }

  storeValue(slot: number, ids: Int32Array, from: number, to: number): void {
    const values = this.values;
    const at = this.valuesUsed;
    for (let k = from; k < to; k++) values[at + k - from] = ids[k]!;
    this.slotValue[slot] = this.valuesUsed;
    this.slotValueLen[slot] = to - from;
    this.valuesUsed += to - from;
  }

  copyValue(slot: number, out: IdSink): void {
    const start = this.slotValue[slot]!;
    const len = this.slotValueLen[slot]!;
    if (out.length + len > out.ids.length) out.grow(out.length + len);
    const ids = out.ids;
    const values = this.values;
    let at = out.length;
    for (let k = 0; k < len; k++) ids[at++] = values[start + k]!;
    out.length = at;
  }
}
