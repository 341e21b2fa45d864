/**
 * Random bad arguments for every native binding (shared by the vitest fuzz test and the GPU
 * check script). A call may succeed when the random arguments happen to be valid; otherwise
 * it must throw an Error. A crash ends the process, which is what the callers detect.
 */
import type { NativeAddon, NativeTensor } from "../native.js";
import { rng } from "./util.js";

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

/** Values to draw arguments from: garbage of every JS type plus small tensors of each dtype. */
export function fuzzPool(tensors: readonly NativeTensor[]): unknown[] {
  return [
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
  const pickArg = () => pool[Math.floor(r() * pool.length)];
  const result: FuzzResult = { threw: 0, ran: 0, badThrows: [] };
  for (let i = 0; i < calls; i++) {
    const [op, arity] = NATIVE_OPS[i % NATIVE_OPS.length]!;
    const n = Math.max(0, arity + Math.floor(r() * 3) - 1);
    const args = Array.from({ length: n }, pickArg);
    if (op === "sumSquares" && r() < 0.5) args[0] = Array.from({ length: 3 }, pickArg);
    try {
      const out = (addon[op] as (...a: unknown[]) => unknown)(...args);
      if (out && typeof out === "object" && "dispose" in out) (out as NativeTensor).dispose();
      result.ran++;
    } catch (e) {
      result.threw++;
      if (!(e instanceof Error) || e.message.length < 5)
        result.badThrows.push(`${op}: ${String(e)}`);
    }
  }
  return result;
}
