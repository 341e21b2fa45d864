/**
 * The buckets stage's k-way merge, with a bounded number of files open at once.
 *
 * A band's signature files (one per signatures task, records [key_hi, key_lo, doc] sorted by
 * (key, doc)) are merged in (key, task, doc) order; documents sharing a key form a bucket, and
 * every member after the first is paired with the first, the smallest (task, doc), so the
 * cluster stage keeps the earliest document.
 *
 * The full corpora make thousands of signatures tasks (SlimPajama alone is 59,166 files, 14,792
 * tasks at 4 files each). Opening every file of a band at once needs that many descriptors, more
 * than many systems allow, and one read window per file. So at most `maxOpenFiles` sources are
 * merged at a time: when there are more, groups of them are first merged into sorted runs
 * (records [key_hi, key_lo, task, doc]) in a temporary directory beside the output, level by
 * level, and the last merge reads the runs. The order of the records is the same at every level,
 * so the pairs are byte-identical to a single merge of every file; the cost is one more read and
 * write of the band's records per extra level (one level up to maxOpenFiles^2 tasks).
 *
 * The merge itself keeps each source's current record in one Uint32Array and the heap as an
 * Int32Array of source indices: no allocation per record.
 */
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { RecordReader, tempSuffix } from "./files.js";

/** Sources merged at once by default: 512 descriptors and about 32 MiB of read windows. */
export const DEFAULT_MAX_OPEN_FILES = 512;

export interface MergeOptions {
  /** At most this many input files open at once (>= 2). */
  maxOpenFiles?: number;
}

/** One sorted input: a signature file (its task fixed) or a run (task in each record). */
interface Source {
  reader: RecordReader;
  /** The task of every record (signature file), or -1 when records carry it (run). */
  task: number;
}

/** Writes 4-word uint32 records through a 1 MiB buffer, synchronously (as the merge runs). */
class QuadWriter {
  private readonly fd: number;
  private readonly buf = new Uint32Array(1 << 18);
  private fill = 0;
  records = 0;

  constructor(path: string) {
    this.fd = openSync(path, "w");
  }

  push(a: number, b: number, c: number, d: number): void {
    if (this.fill === this.buf.length) this.flush();
    this.buf[this.fill++] = a;
    this.buf[this.fill++] = b;
    this.buf[this.fill++] = c;
    this.buf[this.fill++] = d;
    this.records++;
  }

  private flush(): void {
    const bytes = new Uint8Array(this.buf.buffer, 0, this.fill * 4);
    for (let off = 0; off < bytes.length; ) off += writeSync(this.fd, bytes, off);
    this.fill = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

/**
 * Merges `sources` in (hi, lo, task, doc) order, calling `emit` with each record. Sources are
 * closed when exhausted.
 */
function mergeSources(
  sources: Source[],
  emit: (hi: number, lo: number, task: number, doc: number) => void,
): void {
  const n = sources.length;
  const cur = new Uint32Array(4 * n); // [hi, lo, task, doc] of each source's current record
  const heap = new Int32Array(n);
  let size = 0;
  const less = (a: number, b: number): boolean => {
    const x = 4 * a;
    const y = 4 * b;
    for (let i = 0; i < 4; i++) {
      const d = (cur[x + i] as number) - (cur[y + i] as number);
      if (d !== 0) return d < 0;
    }
    return a < b;
  };
  const rec = new Uint32Array(4);
  const load = (k: number): boolean => {
    const src = sources[k] as Source;
    if (!src.reader.readInto(rec)) {
      src.reader.close();
      return false;
    }
    const o = 4 * k;
    cur[o] = rec[0] as number;
    cur[o + 1] = rec[1] as number;
    if (src.task >= 0) {
      cur[o + 2] = src.task;
      cur[o + 3] = rec[2] as number;
    } else {
      cur[o + 2] = rec[2] as number;
      cur[o + 3] = rec[3] as number;
    }
    return true;
  };
  const siftDown = (from: number): void => {
    let i = from;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const r = l + 1;
      const m = r < size && less(heap[r] as number, heap[l] as number) ? r : l;
      if (!less(heap[m] as number, heap[i] as number)) return;
      const t = heap[i] as number;
      heap[i] = heap[m] as number;
      heap[m] = t;
      i = m;
    }
  };
  try {
    for (let k = 0; k < n; k++) if (load(k)) heap[size++] = k;
    for (let i = (size >> 1) - 1; i >= 0; i--) siftDown(i);
    while (size > 0) {
      const k = heap[0] as number;
      const o = 4 * k;
      emit(cur[o] as number, cur[o + 1] as number, cur[o + 2] as number, cur[o + 3] as number);
      if (!load(k)) heap[0] = heap[--size] as number;
      siftDown(0);
    }
  } finally {
    for (const s of sources) s.reader.close(); // those not exhausted (a read failed)
  }
}

/** Opens a group's sources; if one cannot be opened, closes those already open. */
function openAll(opens: (() => Source)[]): Source[] {
  const sources: Source[] = [];
  try {
    for (const open of opens) sources.push(open());
  } catch (err) {
    for (const s of sources) s.reader.close();
    throw err;
  }
  return sources;
}

/** Merges a group into `out`, closing it whatever happens. */
function mergeInto(
  opens: (() => Source)[],
  out: QuadWriter,
  emit: (hi: number, lo: number, task: number, doc: number) => void,
): void {
  try {
    mergeSources(openAll(opens), emit);
  } finally {
    out.close();
  }
}

/**
 * Merges the signature files of one band into duplicate pairs [task_a, doc_a, task_b, doc_b]
 * (b duplicates a), written atomically to `outPath`. Returns the number of pairs.
 */
export async function mergeBand(
  files: { task: number; path: string }[],
  outPath: string,
  options: MergeOptions = {},
): Promise<number> {
  const fanIn = options.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES;
  if (!Number.isInteger(fanIn) || fanIn < 2)
    throw new Error(`mergeBand: maxOpenFiles must be an integer >= 2, got ${fanIn}`);
  mkdirSync(dirname(outPath), { recursive: true });
  // runs of an earlier, interrupted attempt are not trusted: start over
  const runDir = `${outPath}.runs`;
  rmSync(runDir, { recursive: true, force: true });
  // each level: a list of inputs, opened only when their group is merged
  let inputs: (() => Source)[] = files.map((f) => () => ({
    reader: new RecordReader(f.path, 3),
    task: f.task,
  }));
  for (let level = 0; inputs.length > fanIn; level++) {
    mkdirSync(runDir, { recursive: true });
    const next: (() => Source)[] = [];
    for (let g = 0; g * fanIn < inputs.length; g++) {
      const path = join(runDir, `level-${level}-run-${g}.bin`);
      const out = new QuadWriter(path);
      mergeInto(inputs.slice(g * fanIn, (g + 1) * fanIn), out, (hi, lo, task, doc) =>
        out.push(hi, lo, task, doc),
      );
      next.push(() => ({ reader: new RecordReader(path, 4), task: -1 }));
    }
    inputs = next;
  }
  const tmp = `${outPath}${tempSuffix()}`;
  const out = new QuadWriter(tmp);
  let headHi = 0;
  let headLo = 0;
  let headTask = -1; // -1: no bucket yet
  let headDoc = 0;
  mergeInto(inputs, out, (hi, lo, task, doc) => {
    if (headTask >= 0 && hi === headHi && lo === headLo) out.push(headTask, headDoc, task, doc);
    else {
      headHi = hi;
      headLo = lo;
      headTask = task;
      headDoc = doc;
    }
  });
  renameSync(tmp, outPath);
  rmSync(runDir, { recursive: true, force: true });
  return out.records;
}
