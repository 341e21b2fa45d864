/**
 * Naive reference implementations in float64 (plain JS numbers) of every op, written for
 * clarity, not speed: the tests compare the backends against these and against finite
 * differences of them. Layouts as in types.ts; arrays are row-major.
 */

export type Arr = ArrayLike<number>;

export function matmulRef(
  a: Arr,
  b: Arr,
  M: number,
  N: number,
  K: number,
  transA = false,
  transB = false,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const av = a[transA ? k * M + i : i * K + k]!;
        const bv = b[transB ? j * K + k : k * N + j]!;
        s += av * bv;
      }
      out[i * N + j] = s;
    }
  }
  return out;
}

export function embeddingRef(table: Arr, C: number, ids: Arr): Float64Array {
  const out = new Float64Array(ids.length * C);
  for (let n = 0; n < ids.length; n++) {
    for (let c = 0; c < C; c++) out[n * C + c] = table[ids[n]! * C + c]!;
  }
  return out;
}

export function rmsnormRef(
  x: Arr,
  w: Arr,
  N: number,
  C: number,
  eps: number,
): { out: Float64Array; rstd: Float64Array } {
  const out = new Float64Array(N * C);
  const rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[n * C + c]! ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[n] = r;
    for (let c = 0; c < C; c++) out[n * C + c] = x[n * C + c]! * r * w[c]!;
  }
  return { out, rstd };
}

/** Rotate-half RoPE as in transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb. */
export function ropeRef(
  x: Arr,
  shape: readonly [number, number, number, number],
  base: number,
  positionOffset = 0,
  inverse = false,
): Float64Array {
  const [B, T, H, D] = shape;
  const half = D / 2;
  const out = new Float64Array(B * T * H * D);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * D;
        for (let i = 0; i < half; i++) {
          const angle = (t + positionOffset) / base ** ((2 * i) / D);
          const c = Math.cos(angle);
          const s = inverse ? -Math.sin(angle) : Math.sin(angle);
          const x1 = x[o + i]!;
          const x2 = x[o + i + half]!;
          out[o + i] = x1 * c - x2 * s;
          out[o + i + half] = x2 * c + x1 * s;
        }
      }
  return out;
}

/** Attention with the full score matrix (fine at test sizes). */
export function attentionRef(
  q: Arr,
  k: Arr,
  v: Arr,
  shape: { B: number; T: number; H: number; Hkv: number; D: number },
  causal: boolean,
  scale = 1 / Math.sqrt(shape.D),
): { out: Float64Array; lse: Float64Array } {
  const { B, T, H, Hkv, D } = shape;
  const group = H / Hkv;
  const out = new Float64Array(B * T * H * D);
  const lse = new Float64Array(B * H * T);
  const s = new Float64Array(T);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qo = ((b * T + t) * H + h) * D;
        const last = causal ? t : T - 1;
        let mx = -Infinity;
        for (let j = 0; j <= last; j++) {
          const ko = ((b * T + j) * Hkv + g) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d]! * k[ko + d]!;
          s[j] = dot * scale;
          mx = Math.max(mx, s[j]!);
        }
        let l = 0;
        for (let j = 0; j <= last; j++) l += Math.exp(s[j]! - mx);
        lse[(b * H + h) * T + t] = mx + Math.log(l);
        for (let j = 0; j <= last; j++) {
          const p = Math.exp(s[j]! - mx) / l;
          const vo = ((b * T + j) * Hkv + g) * D;
          for (let d = 0; d < D; d++) out[qo + d]! += p * v[vo + d]!;
        }
      }
    }
  return { out, lse };
}

export function swigluRef(gate: Arr, up: Arr): Float64Array {
  const out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
  return out;
}

export function crossEntropyRef(
  logits: Arr,
  targets: Arr,
  N: number,
  V: number,
  dlossScale = 1,
): { losses: Float64Array; dlogits: Float64Array } {
  const losses = new Float64Array(N);
  const dlogits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const t = targets[n]!;
    if (t < 0) continue;
    let mx = -Infinity;
    for (let j = 0; j < V; j++) mx = Math.max(mx, logits[n * V + j]!);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits[n * V + j]! - mx);
    const lse = mx + Math.log(s);
    losses[n] = lse - logits[n * V + t]!;
    for (let j = 0; j < V; j++) {
      dlogits[n * V + j] = (Math.exp(logits[n * V + j]! - lse) - (j === t ? 1 : 0)) * dlossScale;
    }
  }
  return { losses, dlogits };
}

export interface AdamWRefOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
  gradScale?: number;
}

/** torch.optim.AdamW (non-amsgrad, non-fused) on one tensor, in place on copies. */
export function adamwRef(
  w: Arr,
  g: Arr,
  m: Arr,
  v: Arr,
  o: AdamWRefOptions,
): { w: Float64Array; m: Float64Array; v: Float64Array } {
  const n = w.length;
  const W = Float64Array.from(w);
  const Mo = Float64Array.from(m);
  const Vo = Float64Array.from(v);
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < n; i++) {
    const gi = g[i]! * (o.gradScale ?? 1);
    Mo[i] = o.beta1 * Mo[i]! + (1 - o.beta1) * gi;
    Vo[i] = o.beta2 * Vo[i]! + (1 - o.beta2) * gi * gi;
    W[i] = W[i]! * (1 - o.lr * o.weightDecay);
    W[i] = W[i]! - (o.lr / bc1) * (Mo[i]! / (Math.sqrt(Vo[i]!) / Math.sqrt(bc2) + o.eps));
  }
  return { w: W, m: Mo, v: Vo };
}

// One f32 slot viewed as bits, shared by every roundBf16 call: a new typed array per call made
// the rounding of test inputs 70% of kernels-check's time (17.7 of 25 s, CPU profile).
const bf16Slot = new Float32Array(1);
const bf16Bits = new Uint32Array(bf16Slot.buffer);

/** bf16 rounding (round to nearest even) of an f32 value, as the backends do. */
export function roundBf16(x: number): number {
  bf16Slot[0] = x;
  const bits = bf16Bits[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return x;
  bf16Bits[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
  return bf16Slot[0]!;
}
