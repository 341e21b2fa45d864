/**
 * The raw addon surface (build/tinyllama_<backend>.node). Only backend.ts and the tests call
 * it; user code goes through Backend. Each function checks its arguments natively.
 */
export interface NativeTensor {
  dispose(): void;
  view(byteOffset: number, shape: readonly number[], dtype: string): NativeTensor;
  toHost<A extends ArrayBufferView>(into: A): A;
  fromHost(data: ArrayBufferView): void;
  readonly disposed: boolean;
}

type T = NativeTensor | null | undefined;

export interface NativeAddon {
  init(): import("./types.js").DeviceInfo;
  empty(shape: readonly number[], dtype: string): NativeTensor;
  stats(): import("./types.js").BackendStats;
  synchronize(): void;
  embeddingForward(out: T, table: T, ids: T): void;
  embeddingBackward(dTable: T, dOut: T, ids: T): void;
  rmsnormForward(out: T, rstd: T, x: T, weight: T, eps: number): void;
  residualRmsnormForward(
    residualOut: T,
    out: T,
    rstd: T,
    x: T,
    residual: T,
    weight: T,
    eps: number,
  ): void;
  rmsnormBackward(dx: T, dWeight: T, dOut: T, x: T, weight: T, rstd: T): void;
  matmul(
    out: T,
    a: T,
    b: T,
    transA: boolean,
    transB: boolean,
    accumulate: boolean,
    alpha: number,
  ): void;
  rope(out: T, x: T, base: number, positionOffset: number, inverse: boolean): void;
  attentionForward(out: T, lse: T, q: T, k: T, v: T, causal: boolean, scale: number): void;
  decodeAttention(
    out: T,
    q: T,
    kNew: T,
    vNew: T,
    kCache: T,
    vCache: T,
    meta: T,
    ropeBase: number,
    scale: number,
  ): void;
  attentionBackward(
    dq: T,
    dk: T,
    dv: T,
    dOut: T,
    q: T,
    k: T,
    v: T,
    out: T,
    lse: T,
    causal: boolean,
    scale: number,
  ): void;
  swigluForward(out: T, gate: T, up: T): void;
  swigluBackward(dGate: T, dUp: T, dOut: T, gate: T, up: T): void;
  crossEntropy(losses: T, logits: T, targets: T, dlossScale: number, computeGrad: boolean): void;
  argmax(out: T, logits: T): void;
  adamw(
    param: T,
    master: T,
    grad: T,
    m: T,
    v: T,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
    gradScale: number,
  ): void;
  sumSquares(tensors: readonly T[]): number;
  sum(t: T): number;
  cast(out: T, x: T): void;
  fill(t: T, value: number): void;
  copy(dst: T, src: T): void;
  scale(t: T, s: number): void;
}
