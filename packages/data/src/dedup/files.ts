/**
 * On-disk formats between the dedup stages (all little-endian uint32 records):
 *   signatures  sig/task-T/band-B.bin   [key_hi, key_lo, doc] x n, sorted by (key, doc)
 *   buckets     buckets/band-B.bin      [task_a, doc_a, task_b, doc_b] x n: b duplicates a
 *   cluster     remove/task-T.bin       [doc, reason] x n, sorted by doc
 * Band index `bands` (one past the last MinHash band) holds the exact-text keys.
 *
 * Stage memory: a signature task sorts its own documents' keys (bounded by task size); a
 * bucket task streams a k-way merge over every task's file of one band, holding one 64 KiB
 * window per file; the cluster task holds only documents that have a duplicate.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

export async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

function u32bytes(a: Uint32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Sorts triples (hi, lo, doc) by (hi, lo, doc) and writes them. */
export async function writeSortedKeys(path: string, triples: Uint32Array): Promise<void> {
  const n = triples.length / 3;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((x, y) => {
    const dx = (triples[3 * x] as number) - (triples[3 * y] as number);
    if (dx !== 0) return dx;
    const dl = (triples[3 * x + 1] as number) - (triples[3 * y + 1] as number);
    if (dl !== 0) return dl;
    return (triples[3 * x + 2] as number) - (triples[3 * y + 2] as number);
  });
  const out = new Uint32Array(triples.length);
  for (let i = 0; i < n; i++) {
    const s = (order[i] as number) * 3;
    out[3 * i] = triples[s] as number;
    out[3 * i + 1] = triples[s + 1] as number;
    out[3 * i + 2] = triples[s + 2] as number;
  }
  await writeAtomic(path, u32bytes(out));
}

/** Reads fixed-size uint32 records from a file in 64 KiB windows. */
export class RecordReader {
  private readonly fd: number;
  private readonly words: number;
  private buf: Uint32Array;
  private len = 0;
  private pos = 0;
  private fileOffset = 0;
  private eof = false;

  constructor(path: string, wordsPerRecord: number) {
    this.fd = openSync(path, "r");
    this.words = wordsPerRecord;
    this.buf = new Uint32Array(wordsPerRecord * 4096);
  }

  /** Next record (a view valid until the following call), or undefined at the end. */
  next(): Uint32Array | undefined {
    if (this.pos >= this.len) {
      if (this.eof) return undefined;
      const bytes = new Uint8Array(this.buf.buffer);
      let got = 0;
      while (got < bytes.length) {
        const n = readSync(this.fd, bytes, got, bytes.length - got, this.fileOffset + got);
        if (n === 0) break;
        got += n;
      }
      this.fileOffset += got;
      if (got < bytes.length) this.eof = true;
      if (got % (4 * this.words) !== 0) throw new Error(`record file truncated (fd ${this.fd})`);
      this.len = got / 4;
      this.pos = 0;
      if (this.len === 0) return undefined;
    }
    const r = this.buf.subarray(this.pos, this.pos + this.words);
    this.pos += this.words;
    return r;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/**
 * K-way merge of the sorted signature files of one band (one file per task, in task order).
 * Documents sharing a key form a bucket; every member after the first is paired with the
 * first, the smallest (task, doc), so the cluster stage keeps the earliest document.
 */
export async function mergeBand(
  files: { task: number; path: string }[],
  outPath: string,
): Promise<number> {
  const readers = files.map((f) => ({ task: f.task, r: new RecordReader(f.path, 3) }));
  // heap entries: [hi, lo, task, doc, readerIndex]
  const heap: number[][] = [];
  const less = (a: number[], b: number[]) => {
    for (let i = 0; i < 4; i++)
      if ((a[i] as number) !== (b[i] as number)) return (a[i] as number) < (b[i] as number);
    return false;
  };
  const push = (e: number[]) => {
    heap.push(e);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(heap[i] as number[], heap[p] as number[])) break;
      [heap[i], heap[p]] = [heap[p] as number[], heap[i] as number[]];
      i = p;
    }
  };
  const pop = (): number[] | undefined => {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l] as number[], heap[m] as number[])) m = l;
        if (r < heap.length && less(heap[r] as number[], heap[m] as number[])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m] as number[], heap[i] as number[]];
        i = m;
      }
    }
    return top;
  };
  const refill = (k: number) => {
    const src = readers[k];
    const rec = src?.r.next();
    if (src && rec) push([rec[0] as number, rec[1] as number, src.task, rec[2] as number, k]);
  };
  for (let k = 0; k < readers.length; k++) refill(k);
  const pairs: number[] = [];
  let head: number[] | undefined;
  for (;;) {
    const e = pop();
    if (!e) break;
    refill(e[4] as number);
    if (head && head[0] === e[0] && head[1] === e[1])
      pairs.push(head[2] as number, head[3] as number, e[2] as number, e[3] as number);
    else head = e;
  }
  for (const { r } of readers) r.close();
  await writeAtomic(outPath, u32bytes(Uint32Array.from(pairs)));
  return pairs.length / 4;
}

export const REMOVE_EXACT = 1;
export const REMOVE_NEAR = 2;

/**
 * Union-find over all duplicate pairs. Each connected component keeps its smallest
 * (task, doc); the others are removed, tagged exact if an exact-text pair reached them.
 * Returns per task the sorted [doc, reason] list.
 */
export function clusterPairs(
  bandFiles: { path: string; exact: boolean }[],
): Map<number, Uint32Array> {
  const parent = new Map<number, number>();
  const exactDup = new Set<number>();
  const find = (x: number): number => {
    let r = x;
    for (;;) {
      const p = parent.get(r);
      if (p === undefined || p === r) break;
      r = p;
    }
    // path compression
    let c = x;
    while (c !== r) {
      const p = parent.get(c) as number;
      parent.set(c, r);
      c = p;
    }
    return r;
  };
  const key = (task: number, doc: number) => task * 2 ** 32 + doc;
  for (const f of bandFiles) {
    const reader = new RecordReader(f.path, 4);
    for (let rec = reader.next(); rec; rec = reader.next()) {
      const a = key(rec[0] as number, rec[1] as number);
      const b = key(rec[2] as number, rec[3] as number);
      if (f.exact) exactDup.add(b);
      if (!parent.has(a)) parent.set(a, a);
      if (!parent.has(b)) parent.set(b, b);
      const ra = find(a);
      const rb = find(b);
      if (ra !== rb) {
        // the smaller id becomes the root: the earliest document of a component survives
        if (ra < rb) parent.set(rb, ra);
        else parent.set(ra, rb);
      }
    }
    reader.close();
  }
  const perTask = new Map<number, number[]>();
  for (const node of parent.keys()) {
    if (find(node) === node) continue;
    const task = Math.floor(node / 2 ** 32);
    const doc = node % 2 ** 32;
    let list = perTask.get(task);
    if (!list) {
      list = [];
      perTask.set(task, list);
    }
    list.push(doc, exactDup.has(node) ? REMOVE_EXACT : REMOVE_NEAR);
  }
  const out = new Map<number, Uint32Array>();
  for (const [task, list] of perTask) {
    const n = list.length / 2;
    const idx = Array.from({ length: n }, (_, i) => i).sort(
      (x, y) => (list[2 * x] as number) - (list[2 * y] as number),
    );
    const arr = new Uint32Array(list.length);
    idx.forEach((s, i) => {
      arr[2 * i] = list[2 * s] as number;
      arr[2 * i + 1] = list[2 * s + 1] as number;
    });
    out.set(task, arr);
  }
  return out;
}

export async function writeRemoveList(path: string, list: Uint32Array): Promise<void> {
  await writeAtomic(path, u32bytes(list));
}

/** Reads a remove list into doc -> reason. A missing file means nothing to remove. */
export function readRemoveList(path: string): Map<number, number> {
  const out = new Map<number, number>();
  let r: RecordReader;
  try {
    r = new RecordReader(path, 2);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return out;
    throw err;
  }
  for (let rec = r.next(); rec; rec = r.next()) out.set(rec[0] as number, rec[1] as number);
  r.close();
  return out;
}
