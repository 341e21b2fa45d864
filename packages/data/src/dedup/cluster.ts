/**
 * The cluster stage: union-find over every band's duplicate pairs, in typed arrays.
 *
 * Each connected component keeps its smallest (task, doc), the earliest document of the run;
 * the others are removed, tagged exact if an exact-text pair reached them. Only documents that
 * appear in a pair are held. They were first held in a JavaScript Map, which V8 caps at 2^24
 * (16,777,216) entries ("Map maximum size exceeded") at about 65 bytes each: a run whose
 * duplicates involve more documents than that, plausible on corpora that were not deduplicated
 * at the source, could not finish. Here a document is a dense id from an open-addressing hash
 * table over (task, doc), and the forest is an Int32Array: about 30 bytes per document, with
 * no cap short of 2^29 documents.
 */
import { RecordReader } from "./files.js";

export const REMOVE_EXACT = 1;
export const REMOVE_NEAR = 2;

/** Sort keys are task * 2^32 + doc in a float64, exact while task < 2^21. */
const MAX_TASKS = 2 ** 21;
const MAX_SLOTS = 2 ** 30;

/** (task, doc) -> dense id, with each id's task, doc, parent and exact flag. */
class DocForest {
  private slots = new Int32Array(1 << 16); // id + 1, 0 = empty
  private mask = this.slots.length - 1;
  task = new Uint32Array(1 << 15);
  doc = new Uint32Array(1 << 15);
  parent = new Int32Array(1 << 15);
  exact = new Uint8Array(1 << 15);
  size = 0;

  private static hash(task: number, doc: number): number {
    let h = Math.imul(task ^ Math.imul(doc, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  /** The id of (task, doc), or -1 if absent. */
  find(task: number, doc: number): number {
    for (let s = DocForest.hash(task, doc) & this.mask; ; s = (s + 1) & this.mask) {
      const v = this.slots[s] as number;
      if (v === 0) return -1;
      if (this.task[v - 1] === task && this.doc[v - 1] === doc) return v - 1;
    }
  }

  /** The id of (task, doc), added as its own root if absent. */
  id(task: number, doc: number): number {
    let s = DocForest.hash(task, doc) & this.mask;
    for (; ; s = (s + 1) & this.mask) {
      const v = this.slots[s] as number;
      if (v === 0) break;
      if (this.task[v - 1] === task && this.doc[v - 1] === doc) return v - 1;
    }
    if (task >= MAX_TASKS)
      throw new Error(`cluster: task index ${task} is over the supported ${MAX_TASKS}`);
    const id = this.size++;
    if (id === this.task.length) this.growNodes();
    this.task[id] = task;
    this.doc[id] = doc;
    this.parent[id] = id;
    this.slots[s] = id + 1;
    if (2 * this.size > this.slots.length) this.growSlots();
    return id;
  }

  /** The root of `x`'s component, compressing the path to it. */
  root(x: number): number {
    let r = x;
    while (this.parent[r] !== r) r = this.parent[r] as number;
    for (let c = x; c !== r; ) {
      const p = this.parent[c] as number;
      this.parent[c] = r;
      c = p;
    }
    return r;
  }

  /** Joins two components under the smaller (task, doc) of their roots. */
  union(a: number, b: number): void {
    const ra = this.root(a);
    const rb = this.root(b);
    if (ra === rb) return;
    const aFirst =
      (this.task[ra] as number) < (this.task[rb] as number) ||
      (this.task[ra] === this.task[rb] && (this.doc[ra] as number) < (this.doc[rb] as number));
    if (aFirst) this.parent[rb] = ra;
    else this.parent[ra] = rb;
  }

  private growNodes(): void {
    const n = this.task.length * 2;
    const grow = <T extends Uint32Array | Int32Array | Uint8Array>(
      a: T,
      make: (n: number) => T,
    ) => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.task = grow(this.task, (k) => new Uint32Array(k));
    this.doc = grow(this.doc, (k) => new Uint32Array(k));
    this.parent = grow(this.parent, (k) => new Int32Array(k));
    this.exact = grow(this.exact, (k) => new Uint8Array(k));
  }

  private growSlots(): void {
    const n = this.slots.length * 2;
    if (n > MAX_SLOTS)
      throw new Error(
        `cluster: more than ${MAX_SLOTS / 2} documents have a duplicate; split the run into several`,
      );
    this.slots = new Int32Array(n);
    this.mask = n - 1;
    for (let id = 0; id < this.size; id++) {
      let s = DocForest.hash(this.task[id] as number, this.doc[id] as number) & this.mask;
      while (this.slots[s] !== 0) s = (s + 1) & this.mask;
      this.slots[s] = id + 1;
    }
  }
}

/**
 * Union-find over all duplicate pairs ([task_a, doc_a, task_b, doc_b] records; b duplicates
 * a). Returns per task the sorted [doc, reason] list of the documents to remove.
 * `onRemoved(task, keptTask, reason)` is called once per removed document with the task of the
 * document its component keeps (the pipeline counts removals kept in another source).
 */
export function clusterPairs(
  bandFiles: { path: string; exact: boolean }[],
  onRemoved?: (task: number, keptTask: number, reason: number) => void,
): Map<number, Uint32Array> {
  const forest = new DocForest();
  const rec = new Uint32Array(4);
  for (const f of bandFiles) {
    const reader = new RecordReader(f.path, 4);
    try {
      while (reader.readInto(rec)) {
        const a = forest.id(rec[0] as number, rec[1] as number);
        const b = forest.id(rec[2] as number, rec[3] as number);
        if (f.exact) forest.exact[b] = 1;
        forest.union(a, b);
      }
    } finally {
      reader.close();
    }
  }
  // every non-root is removed: sort them by (task, doc) natively through float64 keys
  let removed = 0;
  for (let id = 0; id < forest.size; id++) {
    if (forest.parent[id] === id) continue;
    removed++;
    onRemoved?.(
      forest.task[id] as number,
      forest.task[forest.root(id)] as number,
      forest.exact[id] ? REMOVE_EXACT : REMOVE_NEAR,
    );
  }
  const keys = new Float64Array(removed);
  let k = 0;
  for (let id = 0; id < forest.size; id++)
    if (forest.parent[id] !== id)
      keys[k++] = (forest.task[id] as number) * 2 ** 32 + (forest.doc[id] as number);
  keys.sort();
  const out = new Map<number, Uint32Array>();
  for (let i = 0; i < removed; ) {
    const task = Math.floor((keys[i] as number) / 2 ** 32);
    let j = i;
    while (j < removed && Math.floor((keys[j] as number) / 2 ** 32) === task) j++;
    const list = new Uint32Array(2 * (j - i));
    for (let m = i; m < j; m++) {
      const doc = (keys[m] as number) % 2 ** 32;
      list[2 * (m - i)] = doc;
      list[2 * (m - i) + 1] = forest.exact[forest.find(task, doc)] ? REMOVE_EXACT : REMOVE_NEAR;
    }
    out.set(task, list);
    i = j;
  }
  return out;
}
