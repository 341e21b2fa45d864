/**
 * Test helpers shared by the vitest suites and the GPU check script: a seeded generator,
 * random (never zero) inputs, poisoned outputs, and error measures.
 */
import type { Tensor } from "../tensor.js";
import type { Backend, DType } from "../types.js";

/** mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Normal(0, std) samples, Box-Muller; exact zeros are nudged away. */
export function randn(r: () => number, n: number, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * std;
    out[i] = z === 0 ? 1e-3 : z;
  }
  return out;
}

export function randInts(r: () => number, n: number, hi: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * hi);
  return out;
}

/** ‖a − b‖ / ‖b‖ (relative error scaled by magnitude); NaN anywhere gives Infinity. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relErr: lengths ${a.length} and ${b.length} differ`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** Writes NaN (floats) or a sentinel (ints) everywhere, so unwritten outputs show up. */
export function poison(k: Backend, t: Tensor): Tensor {
  if (t.dtype === "f32" || t.dtype === "bf16")
    t.copyFromHost(new Float32Array(t.numel).fill(Number.NaN));
  else k.fill(t, t.dtype === "i32" ? -123456 : 54321);
  return t;
}

/** A poisoned tensor of `shape`. */
export function poisoned(k: Backend, shape: readonly number[], dtype: DType): Tensor {
  return poison(k, k.empty(shape, dtype));
}

/** Tracks tensors made in a test so one call disposes them all. */
export class Scope {
  private readonly tensors: Tensor[] = [];
  constructor(readonly k: Backend) {}
  track<T extends Tensor>(t: T): T {
    this.tensors.push(t);
    return t;
  }
  from(
    data: Float32Array | Int32Array | Uint16Array,
    shape: readonly number[],
    dtype: DType,
  ): Tensor {
    return this.track(this.k.fromHost(data, shape, dtype));
  }
  poisoned(shape: readonly number[], dtype: DType): Tensor {
    return this.track(poisoned(this.k, shape, dtype));
  }
  zeros(shape: readonly number[], dtype: DType): Tensor {
    return this.track(this.k.zeros(shape, dtype));
  }
  dispose(): void {
    for (const t of this.tensors) t.dispose();
    this.tensors.length = 0;
  }
}
