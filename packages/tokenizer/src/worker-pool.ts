/**
 * A pool of at most `size` encoder threads. Texts are cut into chunks of about CHUNK_CHARS characters
 * and handed to whichever worker is free, so one long document does not stall the others;
 * results are reassembled in input order. Workers share the engine tables (SharedArrayBuffer)
 * and are unref'd while idle, so an open pool never keeps the process alive. Workers are
 * started when there is a chunk for them, so a pool never holds more workers than chunks it
 * has been given at once (a large `threads` for a small batch costs nothing).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { EngineTables } from "./engine.js";
import type { ChunkReply, ChunkRequest } from "./worker.js";

const CHUNK_CHARS = 256 * 1024;
const CHUNK_MAX_TEXTS = 4096;

interface Job {
  texts: readonly string[];
  chunks: Array<[start: number, end: number]>;
  next: number;
  done: number;
  failed: boolean;
  results: Int32Array[];
  bosId: number;
  eosId: number;
  resolve: (r: Int32Array[]) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: { job: Job; chunk: number } | undefined;
  /** Set once the worker failed or exited: it gets no more work and is replaced. */
  dead: boolean;
}

let workerUrlPromise: Promise<URL> | undefined;

/**
 * dist/worker.js when running the built package. When running from TypeScript sources
 * (vitest, typecheck-free dev runs) Node cannot start a .ts worker, so the worker's three
 * modules are transpiled with the TypeScript compiler into the package's
 * node_modules/.cache/tokenizer-worker/<hash of the sources>/: a cache, not a temp dir,
 * because test processes are killed without an exit event and their temp dirs would pile up.
 * The directory is built aside and renamed into place, so parallel test processes never see a
 * half-written one.
 */
function workerUrl(): Promise<URL> {
  workerUrlPromise ??= (async () => {
    if (!import.meta.url.endsWith(".ts")) return new URL("./worker.js", import.meta.url);
    const names = ["worker", "engine", "word-cache"];
    const sources = await Promise.all(
      names.map((name) => readFile(new URL(`./${name}.ts`, import.meta.url), "utf8")),
    );
    const ts = (await import("typescript")).default;
    const hash = createHash("sha256").update(ts.version);
    for (const src of sources) hash.update(src).update("\0");
    const cacheRoot = fileURLToPath(
      new URL("../node_modules/.cache/tokenizer-worker/", import.meta.url),
    );
    const dir = join(cacheRoot, hash.digest("hex").slice(0, 16));
    if (!existsSync(join(dir, "worker.js"))) {
      await mkdir(cacheRoot, { recursive: true });
      const building = await mkdtemp(join(cacheRoot, "building-"));
      await writeFile(join(building, "package.json"), '{"type":"module"}');
      for (const [i, name] of names.entries()) {
        const js = ts.transpileModule(sources[i]!, {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        }).outputText;
        await writeFile(join(building, `${name}.js`), js);
      }
      // another process may have put the same directory in place first: theirs is identical
      await rename(building, dir).catch(async (e: unknown) => {
        await rm(building, { recursive: true, force: true });
        if (!existsSync(join(dir, "worker.js"))) throw e;
      });
    }
    return pathToFileURL(join(dir, "worker.js"));
  })();
  return workerUrlPromise;
}

/**
 * The parent's Node options minus the ones that describe the parent's own entry point
 * (`-e/--eval`, `-p/--print` and their script, `--input-type`), which make a worker fail to
 * start; everything else (memory limits, --expose-gc, loaders) is kept.
 */
export function workerExecArgv(argv: readonly string[] = process.execArgv): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-e" || arg === "--eval" || arg === "-p" || arg === "--print") {
      i++;
      continue;
    }
    if (arg.startsWith("--input-type") || arg.startsWith("--eval=") || arg.startsWith("--print="))
      continue;
    kept.push(arg);
  }
  return kept;
}

/**
 * A Worker with the parent's options (workerExecArgv). Node refuses V8 flags and
 * process-wide options in a worker's execArgv (ERR_WORKER_INVALID_EXEC_ARGV, e.g. for
 * `--expose-gc` or `--max-old-space-size`), and names them in the error; V8 flags apply to the
 * whole process anyway, so the worker is started again without the ones it named.
 */
function startWorker(url: URL, workerData: unknown): Worker {
  const execArgv = workerExecArgv();
  try {
    return new Worker(url, { workerData, execArgv });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ERR_WORKER_INVALID_EXEC_ARGV") throw e;
    const listed = (e as Error).message.split("flags: ")[1] ?? "";
    const refused = new Set(listed.split(", ").map((f) => f.split("=")[0]));
    const kept = execArgv.filter((a) => !refused.has(a.split("=")[0]));
    if (kept.length === execArgv.length) throw e;
    return new Worker(url, { workerData, execArgv: kept });
  }
}

export class WorkerPool {
  readonly size: number;
  private slots: Slot[] = [];
  private readonly jobs: Job[] = [];
  private starting: Promise<void> | undefined;
  private url: URL | undefined;
  private closed = false;

  constructor(
    private readonly tables: EngineTables,
    size: number,
  ) {
    this.size = size;
  }

  private start(): Promise<void> {
    this.starting ??= (async () => {
      this.url = await workerUrl();
    })();
    return this.starting;
  }

  private spawn(url: URL): Slot {
    const worker = startWorker(url, { tables: this.tables });
    const slot: Slot = { worker, busy: undefined, dead: false };
    worker.on("message", (msg: ChunkReply) => {
      if (slot.busy === undefined) return;
      const { job, chunk } = slot.busy;
      slot.busy = undefined;
      if (!job.failed) {
        const [start] = job.chunks[chunk]!;
        for (let i = 0; i + 1 < msg.offsets.length; i++) {
          job.results[start + i] = msg.ids.subarray(msg.offsets[i]!, msg.offsets[i + 1]!);
        }
        if (++job.done === job.chunks.length) {
          this.removeJob(job);
          job.resolve(job.results);
        }
      }
      this.dispatch();
    });
    worker.on("error", (err) => this.fail(slot, err));
    worker.on("exit", (code) => {
      if (!this.closed) this.fail(slot, new Error(`tokenizer worker exited with code ${code}`));
    });
    // After the listeners: adding a "message" listener refs the worker again.
    worker.unref();
    return slot;
  }

  /** A worker died: fail the batch it was serving and replace the worker. */
  private fail(slot: Slot, err: Error): void {
    if (slot.dead) return;
    slot.dead = true;
    const busy = slot.busy;
    slot.busy = undefined;
    void slot.worker.terminate();
    if (busy !== undefined && !busy.job.failed) {
      busy.job.failed = true;
      this.removeJob(busy.job);
      busy.job.reject(new Error(`encodeBatch failed in a worker thread: ${err.message}`));
    }
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    // dispatch starts a replacement when there is work for it
    if (!this.closed) this.dispatch();
  }

  private removeJob(job: Job): void {
    const at = this.jobs.indexOf(job);
    if (at >= 0) this.jobs.splice(at, 1);
  }

  private dispatch(): void {
    for (;;) {
      const job = this.jobs.find((j) => j.next < j.chunks.length);
      if (job === undefined) break;
      let slot = this.slots.find((s) => s.busy === undefined && !s.dead);
      if (slot === undefined) {
        if (this.url === undefined || this.closed || this.slots.length >= this.size) break;
        slot = this.spawn(this.url);
        this.slots.push(slot);
      }
      const chunk = job.next++;
      const [start, end] = job.chunks[chunk]!;
      slot.busy = { job, chunk };
      slot.worker.ref();
      const req: ChunkRequest = {
        kind: "encode",
        chunk,
        texts: job.texts.slice(start, end) as string[],
        bosId: job.bosId,
        eosId: job.eosId,
      };
      slot.worker.postMessage(req);
    }
    for (const slot of this.slots) if (slot.busy === undefined) slot.worker.unref();
  }

  async encode(
    texts: readonly string[],
    bosId: number,
    eosId: number,
    opts: { bos: boolean; eos: boolean },
  ): Promise<Int32Array[]> {
    if (this.closed) throw new Error("encodeBatch: the tokenizer was closed");
    await this.start();
    // close() may have been called while the workers' code was being located
    if (this.closed) throw new Error("encodeBatch: the tokenizer was closed");
    const chunks: Array<[number, number]> = [];
    let start = 0;
    let chars = 0;
    for (let i = 0; i < texts.length; i++) {
      chars += texts[i]!.length;
      if (chars >= CHUNK_CHARS || i + 1 - start >= CHUNK_MAX_TEXTS) {
        chunks.push([start, i + 1]);
        start = i + 1;
        chars = 0;
      }
    }
    if (start < texts.length) chunks.push([start, texts.length]);
    return new Promise<Int32Array[]>((resolve, reject) => {
      this.jobs.push({
        texts,
        chunks,
        next: 0,
        done: 0,
        failed: false,
        results: new Array<Int32Array>(texts.length),
        bosId: opts.bos ? bosId : -1,
        eosId: opts.eos ? eosId : -1,
        resolve,
        reject,
      });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const slot of this.slots) slot.dead = true;
    for (const job of this.jobs.splice(0))
      job.reject(new Error("encodeBatch: the tokenizer was closed"));
    const slots = this.slots;
    this.slots = [];
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
