/**
 * On-disk formats between the dedup stages (all little-endian uint32 records):
 *   signatures  sig/task-T/band-B.bin   [key_hi, key_lo, doc] x n, sorted by (key, doc)
 *   buckets     buckets/band-B.bin      [task_a, doc_a, task_b, doc_b] x n: b duplicates a
 *   cluster     remove/task-T.bin       [doc, reason] x n, sorted by doc
 * Band index `bands` (one past the last MinHash band) holds the exact-text keys.
 *
 * Stage memory: a signature task sorts its own documents' keys (bounded by task size); a
 * bucket task streams a k-way merge of one band over every task's file, at most 512 files open
 * at once with a 48-64 KiB window each (merge.ts); the cluster task holds only documents that
 * have a duplicate, in typed arrays (cluster.ts).
 */
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";

let host: string | undefined;
/**
 * The suffix of every temporary file the pipeline writes (renamed into place when complete):
 * `.tmp-<pid>@<host>`, so a later sweep can tell an orphan of a killed writer (same host, pid
 * gone) from the live file of a duplicate run of the same task (Slurm can requeue a task whose
 * node stopped answering while it still runs there).
 */
export function tempSuffix(): string {
  host ??= hostname().replace(/[^A-Za-z0-9._-]/g, "_");
  return `.tmp-${process.pid}@${host}`;
}

/** A temp file name: [whole, name it becomes, pid, host (absent in names of older versions)]. */
const TEMP_NAME = /^(.*)\.tmp-(\d+)(?:@([A-Za-z0-9._-]*))?$/;

/** The final name of temp file `name`, or undefined if `name` is not one. */
export function tempTarget(name: string): string | undefined {
  return TEMP_NAME.exec(name)?.[1];
}

/**
 * Whether the writer of temp file `name` is certainly gone: it ran on this host and its pid
 * is not a live process (or is this process, which writes no temp of a task it is starting).
 * A temp from another host is never judged here: its writer may still be running there.
 */
function tempWriterGone(name: string): boolean {
  const m = TEMP_NAME.exec(name);
  if (!m) return false;
  tempSuffix(); // sets `host`
  if (m[3] !== undefined && m[3] !== host) return false;
  const pid = Number(m[2]);
  // alive means kept, even if the pid was reused by another process
  return pid === process.pid || !pidAlive(pid);
}

/**
 * Whether process `pid` (of this host) is running: a zombie counts as gone (it exited; its
 * parent has not reaped it yet), a process of another user as running. Tells a temporary file
 * or directory of a crashed writer from one being written right now.
 */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ...": state Z is a process that exited, not yet reaped
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

/**
 * Deletes the temp files in `dir` whose final name `belongs`: all of them (`all`, when every
 * task that could write them has finished), or only those whose writer is gone. Returns how
 * many it deleted. A missing directory has none.
 */
export async function sweepTemps(
  dir: string,
  belongs: (target: string) => boolean,
  all: boolean,
): Promise<number> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let n = 0;
  for (const name of names) {
    const target = tempTarget(name);
    if (target === undefined || !belongs(target)) continue;
    if (!all && !tempWriterGone(name)) continue;
    await rm(join(dir, name), { force: true, recursive: true });
    n++;
  }
  return n;
}

export async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}${tempSuffix()}`;
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

/** Reads fixed-size uint32 records from a file in windows of 4096 records (48 KiB for 3 words). */
export class RecordReader {
  private readonly fd: number;
  private readonly path: string;
  private readonly words: number;
  private buf: Uint32Array;
  private len = 0;
  private pos = 0;
  private fileOffset = 0;
  private eof = false;
  private closed = false;

  constructor(path: string, wordsPerRecord: number) {
    this.fd = openSync(path, "r");
    this.path = path;
    this.words = wordsPerRecord;
    this.buf = new Uint32Array(wordsPerRecord * 4096);
  }

  /** Next record (a view valid until the following call), or undefined at the end. */
  next(): Uint32Array | undefined {
    if (!this.fillIfEmpty()) return undefined;
    const r = this.buf.subarray(this.pos, this.pos + this.words);
    this.pos += this.words;
    return r;
  }

  /** Copies the next record into `out` (no view allocated); false at the end. */
  readInto(out: Uint32Array): boolean {
    if (!this.fillIfEmpty()) return false;
    for (let i = 0; i < this.words; i++) out[i] = this.buf[this.pos + i] as number;
    this.pos += this.words;
    return true;
  }

  /** Reads the next window when the current one is used up; false at the end of the file. */
  private fillIfEmpty(): boolean {
    if (this.pos >= this.len) {
      if (this.eof) return false;
      const bytes = new Uint8Array(this.buf.buffer);
      let got = 0;
      while (got < bytes.length) {
        const n = readSync(this.fd, bytes, got, bytes.length - got, this.fileOffset + got);
        if (n === 0) break;
        got += n;
      }
      this.fileOffset += got;
      if (got < bytes.length) this.eof = true;
      if (got % (4 * this.words) !== 0)
        throw new Error(
          `${this.path}: truncated record file (${this.fileOffset} bytes is not a whole number of ${4 * this.words}-byte records)`,
        );
      this.len = got / 4;
      this.pos = 0;
      if (this.len === 0) return false;
    }
    return true;
  }

  /** Closes the file; a second call does nothing (the descriptor may already be reused). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
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
