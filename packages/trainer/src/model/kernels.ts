/**
 * The part of the @tinyllama/kernels contract (KERNELS-API, packages/kernels/README.md) that the
 * trainer calls, as a structural type: the model and the training loop are written against
 * these ops only, so they never see which backend runs or touch device pointers.
 */

export type DType = "f32" | "bf16" | "i32" | "u16";

export interface Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly numel: number;
  toHost(): Float32Array | Int32Array | Uint16Array;
  view(offsetElements: number, shape: number[]): Tensor;
  dispose(): void;
}

export interface Arena {
  get(name: string): Tensor;
  readonly bytes: number;
  dispose(): void;
}

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
  alpha?: number;
}

export interface AdamWArgs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
  gradScale: number;
}

export interface Backend {
  readonly name: string;
  stats(): { liveTensors: number; liveBytes: number };
  empty(shape: number[], dtype: DType): Tensor;
  fromHost(data: Float32Array | Int32Array | Uint16Array, shape: number[], dtype: DType): Tensor;
  arena(specs: { name: string; shape: number[]; dtype: DType }[]): Arena;
  embeddingForward(out: Tensor, table: Tensor, ids: Tensor): void;
  embeddingBackward(dTable: Tensor, dOut: Tensor, ids: Tensor): void;
  rmsnormForward(out: Tensor, rstd: Tensor, x: Tensor, weight: Tensor, eps: number): void;
  residualRmsnormForward(
    residualOut: Tensor,
    out: Tensor,
    rstd: Tensor,
    x: Tensor,
    residual: Tensor,
    weight: Tensor,
    eps: number,
  ): void;
  rmsnormBackward(
    dx: Tensor,
    dWeight: Tensor,
    dOut: Tensor,
    x: Tensor,
    weight: Tensor,
    rstd: Tensor,
  ): void;
  matmul(out: Tensor, a: Tensor, b: Tensor, opts?: MatmulOptions): void;
  ropeForward(out: Tensor, x: Tensor, opts: { base: number; positionOffset?: number }): void;
  ropeBackward(dx: Tensor, dOut: Tensor, opts: { base: number }): void;
  attentionForward(
    out: Tensor,
    lse: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    opts: { causal: boolean; scale?: number },
  ): void;
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
    opts: { causal: boolean; scale?: number },
  ): void;
  swigluForward(out: Tensor, gate: Tensor, up: Tensor): void;
  swigluBackward(dGate: Tensor, dUp: Tensor, dOut: Tensor, gate: Tensor, up: Tensor): void;
  crossEntropy(
    losses: Tensor,
    logits: Tensor,
    targets: Tensor,
    opts: { dlossScale?: number; computeGrad: boolean },
  ): void;
  adamw(
    param: Tensor,
    master: Tensor | null,
    grad: Tensor,
    m: Tensor,
    v: Tensor,
    a: AdamWArgs,
  ): void;
  sumSquares(tensors: Tensor[]): number;
  cast(out: Tensor, x: Tensor): void;
  fill(t: Tensor, value: number): void;
  copy(dst: Tensor, src: Tensor): void;
  scale(t: Tensor, s: number): void;
  sum(t: Tensor): number;
  synchronize(): void;
}

export type DeviceName = "cpu" | "cuda" | "auto";

/** Loads a kernels backend; "cuda" without a GPU throws the kernels package's clear error. */
export async function loadKernels(device: DeviceName): Promise<Backend> {
  const mod = (await import("@tinyllama/kernels")) as unknown as {
    loadBackend?: (d: DeviceName) => Promise<Backend>;
  };
  if (typeof mod.loadBackend !== "function") {
    throw new Error(
      "@tinyllama/kernels does not export loadBackend yet: build the kernels package (pnpm build)",
    );
  }
  return mod.loadBackend(device);
}
