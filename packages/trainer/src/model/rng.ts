/**
 * Deterministic random numbers for initialisation: xoshiro128** seeded through splitmix32, and
 * normals by Box-Muller. Host-side so the same seed gives the same weights on every backend and
 * machine; the state is four uint32 words, small enough to store in a checkpoint.
 */
import { normalPool } from "./normal-pool.js";

export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed: number) {
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      // splitmix32: spreads a small seed over the whole state.
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in (0, 1): never 0, so log() is safe. */
  uniform(): number {
    return (this.nextU32() + 0.5) / 4294967296;
  }

  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const th = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }

  /**
   * out[i] = normal() * std for every i, in order. Large arrays go through the worker pool
   * (normal-pool.ts): the same draws and the same bits, several times faster.
   */
  fillNormal(out: Float32Array, std: number): void {
    const pool = out.length >= PARALLEL_MIN ? normalPool() : null;
    let i = 0;
    if (pool) {
      if (this.spare !== null) out[i++] = this.normal() * std;
      // Whole pairs through the workers, in rounds: the next round's uniforms are drawn here
      // while the workers transform the current one. An odd last value is left to the loop
      // below, whose normal() draws its pair and keeps the second half as the spare.
      let slot: 0 | 1 = 0;
      let pending: { slot: 0 | 1; n: number; at: number } | null = null;
      for (let pairs = (out.length - i) >> 1; pairs > 0; pairs = (out.length - i) >> 1) {
        const n = Math.min(pairs, pool.maxPairs);
        this.fillU32(pool.u32[slot], 2 * n);
        if (pending) {
          pool.wait();
          out.set(pool.out[pending.slot].subarray(0, 2 * pending.n), pending.at);
        }
        pool.start(slot, n, std);
        pending = { slot, n, at: i };
        i += 2 * n;
        slot = slot === 0 ? 1 : 0;
      }
      if (pending) {
        pool.wait();
        out.set(pool.out[pending.slot].subarray(0, 2 * pending.n), pending.at);
      }
    }
    for (; i < out.length; i++) out[i] = this.normal() * std;
  }

  /** dst[0..n) = the next n values of nextU32(), with the state in locals (no per-call loads). */
  fillU32(dst: Uint32Array, n: number): void {
    let s0 = this.s[0]!;
    let s1 = this.s[1]!;
    let s2 = this.s[2]!;
    let s3 = this.s[3]!;
    for (let k = 0; k < n; k++) {
      const x = Math.imul(s1, 5);
      dst[k] = Math.imul((x << 7) | (x >>> 25), 9);
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
    }
    this.s[0] = s0;
    this.s[1] = s1;
    this.s[2] = s2;
    this.s[3] = s3;
  }

  state(): { s: number[]; spare: number | null } {
    return { s: Array.from(this.s), spare: this.spare };
  }

  static restore(st: { s: number[]; spare: number | null }): Rng {
    const r = new Rng(0);
    if (!Array.isArray(st.s) || st.s.length !== 4) throw new Error("rng state: expected 4 words");
    r.s.set(st.s.map((v) => v >>> 0));
    r.spare = st.spare;
    return r;
  }
}

/** fillNormal hands arrays of at least this many values to the worker pool. */
const PARALLEL_MIN = 1 << 20;

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
