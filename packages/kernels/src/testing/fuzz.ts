/**
 * Random bad arguments for every native binding (shared by the vitest fuzz test and the GPU
 * check script). A call may succeed when the random arguments happen to be valid; otherwise
 * it must throw an Error. A crash ends the process, which is what the callers detect.
 */
import type { NativeAddon, NativeTensor } from "../native.js";
import type { Backend, DType } from "../types.js";
import { rng, Scope } from "./util.js";

export const NATIVE_OPS: ReadonlyArray<readonly [keyof NativeAddon, number]> = [
  ["embeddingForward", 3],
  ["embeddingBackward", 3],
  ["rmsnormForward", 5],
  ["residualRmsnormForward", 7],
  ["rmsnormBackward", 6],
  ["matmul", 7],
  ["rope", 5],
  ["attentionForward", 7],
  ["attentionBackward", 11],
  ["decodeAttention", 9],
  ["swigluForward", 3],
  ["swigluBackward", 5],
  ["crossEntropy", 5],
  ["argmax", 2],
  ["adamw", 12],
  ["sumSquares", 1],
  ["sum", 1],
  ["cast", 2],
  ["fill", 2],
  ["copy", 2],
  ["scale", 2],
  ["empty", 2],
  ["synchronize", 0],
];

/**
 * Shapes whose element count overflows int64 (or whose non-zero dims do, behind a zero) when
 * multiplied naively: [2^32, 2^32] wrapped to 0 elements and [2^39, 2^24] to -2^63, so empty()
 * allocated 16 bytes, view() passed its bound check and the kernels indexed with the real dims.
 * empty() and view() must refuse every one.
 */
export const OVERFLOW_SHAPES: ReadonlyArray<readonly number[]> = [
  [2 ** 32, 2 ** 32],
  [2 ** 39, 2 ** 24],
  [1, 1, 2 ** 39, 2 ** 24],
  [2 ** 31, 2 ** 32],
  [1e12, 1e12],
  [2 ** 20, 2 ** 20, 2 ** 20, 2 ** 20],
  [2 ** 40, 0, 2 ** 40],
  [2 ** 40 + 1],
];

/** Values to draw arguments from: garbage of every JS type plus small tensors of each dtype. */
export function fuzzPool(tensors: readonly NativeTensor[]): unknown[] {
  return [
    ...OVERFLOW_SHAPES.map((s) => [...s]),
    undefined,
    null,
    0,
    -1,
    1,
    2,
    0.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    1e300,
    -1e300,
    2 ** 53,
    "f32",
    "x",
    "",
    true,
    false,
    {},
    [],
    [1, 2],
    [-1],
    [1e20],
    new Float32Array(4),
    new Int32Array(2),
    () => 0,
    Symbol("s"),
    10n,
    { native: tensors[0] },
    ...tensors,
    ...tensors,
  ];
}

export interface FuzzResult {
  threw: number;
  ran: number;
  /** Thrown values that were not Error instances or had no message. */
  badThrows: string[];
}

export function fuzzNative(
  addon: NativeAddon,
  pool: readonly unknown[],
  calls: number,
  seed = 12345,
): FuzzResult {
  const r = rng(seed);
  // Tensors the fuzz itself creates (empty() with a pool shape) join the pool, so a shape that
  // empty() wrongly accepts meets the kernels; they are disposed at the end.
  const values = [...pool];
  const created: NativeTensor[] = [];
  const pickArg = () => values[Math.floor(r() * values.length)];
  const result: FuzzResult = { threw: 0, ran: 0, badThrows: [] };
  try {
    for (let i = 0; i < calls; i++) {
      const [op, arity] = NATIVE_OPS[i % NATIVE_OPS.length]!;
      const n = Math.max(0, arity + Math.floor(r() * 3) - 1);
      const args = Array.from({ length: n }, pickArg);
      if (op === "sumSquares" && r() < 0.5) args[0] = Array.from({ length: 3 }, pickArg);
      try {
        const out = (addon[op] as (...a: unknown[]) => unknown)(...args);
        if (out && typeof out === "object" && "dispose" in out) {
          const t = out as NativeTensor;
          if (created.length < 64) {
            created.push(t);
            values.push(t);
          } else {
            t.dispose();
          }
        }
        result.ran++;
      } catch (e) {
        result.threw++;
        if (!(e instanceof Error) || e.message.length < 5)
          result.badThrows.push(`${op}: ${String(e)}`);
      }
    }
  } finally {
    for (const t of created) t.dispose();
  }
  return result;
}

/**
 * Every op once with a zero-sized dimension where its arguments otherwise agree: a zero-width
 * row (C, V, D = 0), no rows (N, T = 0), an empty inner dimension (K = 0). Each must run (and
 * do nothing) or throw an Error; a crash ends the process, which is what the callers detect.
 * `numel / lastDim` once took a process down with SIGFPE here. Returns each call's outcome;
 * every tensor it makes is disposed.
 */
export function runZeroSizeCalls(
  k: Backend,
  opts: {
    from?: number;
    onStart?: (index: number, name: string) => void;
    onDone?: (index: number, name: string, outcome: string) => void;
  } = {},
): Array<{ name: string; outcome: string }> {
  const s = new Scope(k);
  const z = (shape: number[], dtype: DType = "f32") => s.zeros(shape, dtype);
  const adam = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 1 };
  // attentionForward(out, lse, q, k, v, ...) of sequence length T and head dim D (2 : 1 heads)
  const attention = (T: number, D: number) =>
    k.attentionForward(
      z([1, T, 2, D]),
      z([1, 2, T]),
      z([1, T, 2, D]),
      z([1, T, 1, D]),
      z([1, T, 1, D]),
      {
        causal: true,
      },
    );
  const calls: Array<[string, () => unknown]> = [
    ["rmsnormForward C=0", () => k.rmsnormForward(z([2, 0]), z([2]), z([2, 0]), z([0]), 1e-5)],
    [
      "residualRmsnormForward C=0",
      () =>
        k.residualRmsnormForward(z([2, 0]), z([2, 0]), z([2]), z([2, 0]), z([2, 0]), z([0]), 1e-5),
    ],
    [
      "rmsnormBackward C=0",
      () => k.rmsnormBackward(z([2, 0]), z([0]), z([2, 0]), z([2, 0]), z([0]), z([2])),
    ],
    ["rmsnormForward N=0", () => k.rmsnormForward(z([0, 4]), z([0]), z([0, 4]), z([4]), 1e-5)],
    ["matmul K=0", () => k.matmul(z([2, 3]), z([2, 0]), z([0, 3]), {})],
    ["matmul N=0", () => k.matmul(z([2, 0]), z([2, 3]), z([3, 0]), {})],
    ["matmul M=0", () => k.matmul(z([0, 3]), z([0, 3]), z([3, 3]), {})],
    ["embeddingForward C=0", () => k.embeddingForward(z([2, 0]), z([5, 0]), z([2], "i32"))],
    ["embeddingBackward C=0", () => k.embeddingBackward(z([5, 0]), z([2, 0]), z([2], "i32"))],
    ["swigluForward C=0", () => k.swigluForward(z([2, 0]), z([2, 0]), z([2, 0]))],
    [
      "crossEntropy V=0",
      () => k.crossEntropy(z([2]), z([2, 0]), z([2], "i32"), { computeGrad: true }),
    ],
    [
      "crossEntropy N=0",
      () => k.crossEntropy(z([0]), z([0, 8]), z([0], "i32"), { computeGrad: false }),
    ],
    ["argmax V=0", () => k.argmax(z([2], "i32"), z([2, 0]))],
    ["argmax N=0", () => k.argmax(z([0], "i32"), z([0, 8]))],
    ["ropeForward D=0", () => k.ropeForward(z([1, 2, 1, 0]), z([1, 2, 1, 0]), { base: 10000 })],
    ["attentionForward T=0", () => attention(0, 4)],
    ["attentionForward D=0", () => attention(3, 0)],
    ["cast C=0", () => k.cast(z([2, 0], "bf16"), z([2, 0]))],
    ["sum C=0", () => k.sum(z([2, 0]))],
    ["adamw n=0", () => k.adamw(z([0]), null, z([0]), z([0]), z([0]), adam)],
  ];
  const out: Array<{ name: string; outcome: string }> = [];
  try {
    for (const [index, [name, call]] of calls.entries()) {
      if (index < (opts.from ?? 0)) continue;
      opts.onStart?.(index, name);
      let outcome = "ran";
      try {
        call();
        k.synchronize();
      } catch (e) {
        outcome =
          e instanceof Error && e.message.length >= 5
            ? `threw: ${e.message}`
            : `bad throw: ${String(e)}`;
      }
      out.push({ name, outcome });
      opts.onDone?.(index, name, outcome);
    }
  } finally {
    s.dispose();
  }
  return out;
}
