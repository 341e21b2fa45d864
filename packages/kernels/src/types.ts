/**
 * Public types of @tinyllama/kernels. The Backend interface mirrors the native addon one to
 * one: every method is a thin call into native code, which checks its arguments and throws a
 * JavaScript error naming the problem. Ops write into preallocated outputs and allocate nothing.
 * Row counts: N = product of all dimensions but the last (e.g. B*T).
 */
import type { Arena, ArenaEntry } from "./arena.js";
import type { Tensor } from "./tensor.js";

export type DType = "f32" | "bf16" | "i32" | "u16";
export type BackendName = "cpu" | "cuda";
export type HostArray = Float32Array | Int32Array | Uint16Array;

export interface DeviceInfo {
  backend: BackendName;
  /** "host CPU" or the GPU's name. */
  name: string;
  /** "major.minor" on CUDA, "0.0" on CPU. */
  computeCapability: string;
  /** Device memory in bytes (0 on CPU). */
  totalMemory: number;
  /** CPU worker threads (CPU backend), 0 on CUDA. */
  threads: number;
  detail: string;
}

export interface BackendStats {
  /** Tensor handles (views included) not yet disposed or collected. */
  liveTensors: number;
  /** Bytes of native memory held by live allocations. */
  liveBytes: number;
  peakBytes: number;
  /** Allocations made since load (an arena is one). */
  allocations: number;
}

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  /** out += alpha * op(a) @ op(b) instead of out = ... */
  accumulate?: boolean;
  alpha?: number;
}

export interface RopeOptions {
  /** rope_theta; TinyLlama uses 10000. */
  base: number;
  /** Position of the first row of T (for decoding with a cache); default 0. */
  positionOffset?: number;
}

export interface AttentionOptions {
  causal: boolean;
  /** Softmax scale; default 1/sqrt(D). */
  scale?: number;
}

export interface CrossEntropyOptions {
  /** Multiplies dlogits, e.g. 1 / (N * gradAccumSteps); default 1. */
  dlossScale?: number;
  /** When true, logits are overwritten with dlogits = (softmax - onehot) * dlossScale. */
  computeGrad: boolean;
}

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step for bias correction. */
  step: number;
  /** Multiplies the gradient before the update (clip factor and loss scaling); default 1. */
  gradScale?: number;
}

export interface Backend {
  readonly name: BackendName;
  readonly device: DeviceInfo;
  stats(): BackendStats;
  /** Waits for all queued device work (no-op on CPU). */
  synchronize(): void;

  /** Uninitialised native memory. */
  empty(shape: readonly number[], dtype: DType): Tensor;
  /** empty() followed by fill(0). */
  zeros(shape: readonly number[], dtype: DType): Tensor;
  /**
   * Host data into a new tensor. Float32Array -> f32 or bf16 (rounded to nearest even);
   * Uint16Array -> bf16 (raw bits) or u16; Int32Array -> i32.
   */
  fromHost(data: HostArray, shape: readonly number[], dtype: DType): Tensor;
  /** One allocation holding every entry, each 256-byte aligned; entries are views. */
  arena(entries: readonly ArenaEntry[]): Arena;

  // Embedding. out [N,C], table [V,C], ids [N] i32.
  embeddingForward(out: Tensor, table: Tensor, ids: Tensor): void;
  /** dTable [V,C] f32 += scatter(dOut) by ids; deterministic (same bits every run). */
  embeddingBackward(dTable: Tensor, dOut: Tensor, ids: Tensor): void;

  // RMSNorm (Llama): out = x / sqrt(mean(x^2) + eps) * weight; rstd [N] f32 kept for backward.
  rmsnormForward(out: Tensor, rstd: Tensor, x: Tensor, weight: Tensor, eps: number): void;
  /** residualOut = x + residual; out = rmsnorm(residualOut). */
  residualRmsnormForward(
    residualOut: Tensor,
    out: Tensor,
    rstd: Tensor,
    x: Tensor,
    residual: Tensor,
    weight: Tensor,
    eps: number,
  ): void;
  /** dx += ..., dWeight (f32) += ...; x is the normalised input (residualOut for the fused op). */
  rmsnormBackward(
    dx: Tensor,
    dWeight: Tensor,
    dOut: Tensor,
    x: Tensor,
    weight: Tensor,
    rstd: Tensor,
  ): void;

  /**
   * out[M,N] (+)= alpha * op(a)[M,K] @ op(b)[K,N], row-major; leading dims are flattened.
   * a and b share a dtype (bf16 on GPU for speed); out is f32 or bf16; fp32 accumulation.
   */
  matmul(out: Tensor, a: Tensor, b: Tensor, options?: MatmulOptions): void;

  /** Rotary embedding, HF rotate-half layout; x, out [B,T,H,D]; out may be x. */
  ropeForward(out: Tensor, x: Tensor, options: RopeOptions): void;
  /** Transpose rotation: dx = R^T dOut; dx may be dOut. */
  ropeBackward(dx: Tensor, dOut: Tensor, options: RopeOptions): void;

  /**
   * Grouped-query attention. q/out [B,T,H,D], k/v [B,T,Hkv,D] (H a multiple of Hkv),
   * lse [B,H,T] f32 (log-sum-exp of the scaled scores, kept for backward). No T x T matrix.
   */
  attentionForward(
    out: Tensor,
    lse: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    options: AttentionOptions,
  ): void;
  /** Writes (does not accumulate) dq, dk, dv. */
  attentionBackward(
    dq: Tensor,
    dk: Tensor,
    dv: Tensor,
    dOut: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    options: AttentionOptions,
  ): void;

  /**
   * One decoding step over a KV cache, S sequences with one new token each: q [S,H,D] and
   * kNew/vNew [S,Hkv,D] (projections, not yet rotated); kCache/vCache [slots,maxLen,Hkv,D];
   * meta i32 [2,S]: each row's cache slot, then its position. Rotates q and kNew by RoPE at the
   * position (as ropeForward), writes kNew/vNew into the cache at (slot, position), and writes
   * out[s] = attention of q over the slot's keys 0..position. Slots must differ between rows;
   * a slot or position outside the cache throws (CPU) or is reported by synchronize (CUDA).
   */
  decodeAttention(
    out: Tensor,
    q: Tensor,
    kNew: Tensor,
    vNew: Tensor,
    kCache: Tensor,
    vCache: Tensor,
    meta: Tensor,
    options: { ropeBase: number; scale?: number },
  ): void;

  /** out = silu(gate) * up; out may be gate or up. */
  swigluForward(out: Tensor, gate: Tensor, up: Tensor): void;
  /** Writes dGate and dUp; either may alias an input (it is read first). */
  swigluBackward(dGate: Tensor, dUp: Tensor, dOut: Tensor, gate: Tensor, up: Tensor): void;

  /**
   * losses[n] = logsumexp(logits[n]) - logits[n, targets[n]]; targets < 0 are ignored (loss 0,
   * gradient 0). With computeGrad, logits are overwritten in place by the gradient.
   */
  crossEntropy(losses: Tensor, logits: Tensor, targets: Tensor, options: CrossEntropyOptions): void;

  /**
   * out[n] (i32 [N]) = index of the first maximum of logits row n ([N, V], f32 or bf16), a NaN
   * counting as the maximum: torch.argmax(logits, dim=-1). Greedy tokens, and the harness's
   * is_greedy, without copying logit rows to the host.
   */
  argmax(out: Tensor, logits: Tensor): void;

  /**
   * torch.optim.AdamW step on f32 master weights. param f32 (master = null) or bf16 with an
   * f32 master copy (param is rewritten as round-to-nearest of master). grad, m, v f32.
   */
  adamw(
    param: Tensor,
    master: Tensor | null,
    grad: Tensor,
    m: Tensor,
    v: Tensor,
    options: AdamWOptions,
  ): void;

  /** Sum of squares over all elements of all tensors, deterministic; synchronises. */
  sumSquares(tensors: readonly Tensor[]): number;
  /** Sum of all elements (deterministic); synchronises. */
  sum(t: Tensor): number;
  /** f32 <-> bf16 (round to nearest even), u16 -> i32, or same dtype. */
  cast(out: Tensor, x: Tensor): void;
  fill(t: Tensor, value: number): void;
  copy(dst: Tensor, src: Tensor): void;
  /** t *= s */
  scale(t: Tensor, s: number): void;
}
