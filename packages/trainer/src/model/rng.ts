/**
 * Deterministic random numbers for initialisation: xoshiro128** seeded through splitmix32, and
 * normals by Box-Muller. Host-side so the same seed gives the same weights on every backend and
 * machine; the state is four uint32 words, small enough to store in a checkpoint.
 */
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

  fillNormal(out: Float32Array, std: number): void {
    for (let i = 0; i < out.length; i++) out[i] = this.normal() * std;
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

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
