/**
 * Worker threads for the Box-Muller half of `Rng.fillNormal` on large tensors. The reference
 * initialisation of the 1.1B model draws 1.1 billion normals; on one thread that took 38 s of
 * every training start (25-40 s per rank on the GPU hosts), most of it in Math.log / sqrt /
 * cos / sin. The uniform stream stays sequential (xoshiro128** on the calling thread, cheap),
 * and the transform of each pair of uniforms into two normals is split over the workers: V8's
 * Math functions are its own portable implementations, identical on every thread, so the
 * weights are the same bits as the sequential loop (tested).
 *
 * Protocol, all in shared memory so the caller can stay synchronous: the caller writes the
 * uniforms of one of two slots and the scale, bumps a generation counter and notifies; each
 * worker transforms its slice of pairs, bumps a done counter, and the last one notifies the
 * caller, which meanwhile draws the next round's uniforms into the other slot and then waits
 * with Atomics.wait (allowed on Node's main thread). Workers are unref()'d: they never keep a
 * process alive. TINYLLAMA_INIT_THREADS=N sets their number (1: the sequential loop).
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

/** Pairs per round: per slot, 2M uniforms (8 MB) and 2M outputs (8 MB) of shared memory. */
const MAX_PAIRS = 1 << 20;

// The worker: the same expressions as Rng.uniform / Rng.normal / fillNormal, in the same order.
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { ctrl, scale, index, count } = workerData;
let seen = 0;
for (;;) {
  Atomics.wait(ctrl, 0, seen);
  seen = Atomics.load(ctrl, 0);
  const pairs = ctrl[1];
  const u32 = workerData.u32[ctrl[3]];
  const out = workerData.out[ctrl[3]];
  const std = scale[0];
  const per = Math.ceil(pairs / count);
  const end = Math.min(pairs, (index + 1) * per);
  for (let j = index * per; j < end; j++) {
    const u1 = (u32[2 * j] + 0.5) / 4294967296;
    const u2 = (u32[2 * j + 1] + 0.5) / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1));
    const th = 2 * Math.PI * u2;
    out[2 * j] = r * Math.cos(th) * std;
    out[2 * j + 1] = r * Math.sin(th) * std;
  }
  if (Atomics.add(ctrl, 2, 1) + 1 === count) Atomics.notify(ctrl, 2);
}
`;

export class NormalPool {
  /** Per slot: the uniforms of a round, two per pair (written by the caller). */
  readonly u32: [Uint32Array, Uint32Array];
  /** Per slot: the scaled normals of a round, two per pair (written by the workers). */
  readonly out: [Float32Array, Float32Array];
  readonly maxPairs = MAX_PAIRS;
  private readonly ctrl: Int32Array; // [generation, pairs, workers done, slot]
  private readonly scale: Float64Array;
  private running = false;

  constructor(readonly count: number) {
    this.ctrl = new Int32Array(new SharedArrayBuffer(4 * 4));
    this.scale = new Float64Array(new SharedArrayBuffer(8));
    const u32 = () => new Uint32Array(new SharedArrayBuffer(2 * MAX_PAIRS * 4));
    const f32 = () => new Float32Array(new SharedArrayBuffer(2 * MAX_PAIRS * 4));
    this.u32 = [u32(), u32()];
    this.out = [f32(), f32()];
    // Unref()'d workers run until the process ends; nothing needs to hold them.
    for (let index = 0; index < count; index++) {
      new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {
          ctrl: this.ctrl,
          scale: this.scale,
          u32: this.u32,
          out: this.out,
          index,
          count,
        },
      }).unref();
    }
  }

  /** Starts transforming the first `pairs` pairs of `u32[slot]` into `out[slot]`, scaled by `std`. */
  start(slot: 0 | 1, pairs: number, std: number): void {
    if (this.running) throw new Error("NormalPool.start: the previous round is still running");
    if (pairs > MAX_PAIRS) throw new Error(`NormalPool.start: ${pairs} pairs exceed ${MAX_PAIRS}`);
    this.running = true;
    Atomics.store(this.ctrl, 2, 0);
    this.ctrl[1] = pairs;
    this.ctrl[3] = slot;
    this.scale[0] = std;
    Atomics.add(this.ctrl, 0, 1);
    Atomics.notify(this.ctrl, 0);
  }

  /** Blocks until the round started last is done. */
  wait(): void {
    this.running = false;
    for (;;) {
      const done = Atomics.load(this.ctrl, 2);
      if (done >= this.count) return;
      // A worker that died would leave this waiting forever: time out and say so.
      if (Atomics.wait(this.ctrl, 2, done, 60_000) === "timed-out") {
        throw new Error(
          `NormalPool: ${this.count - done} of ${this.count} init workers did not answer in 60 s`,
        );
      }
    }
  }
}

let pool: NormalPool | null | undefined;

/** The process's pool, created on first use; null where one thread is asked for or available. */
export function normalPool(): NormalPool | null {
  if (pool !== undefined) return pool;
  const env = process.env.TINYLLAMA_INIT_THREADS;
  let n = Math.min(availableParallelism(), 32);
  if (env !== undefined && env !== "") {
    n = Number(env);
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`TINYLLAMA_INIT_THREADS must be a positive integer, got "${env}"`);
    }
  }
  pool = n > 1 ? new NormalPool(n) : null;
  return pool;
}
