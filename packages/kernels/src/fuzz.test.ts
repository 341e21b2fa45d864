// Random bad arguments at every native binding: each call must either succeed (the random
// arguments happened to be valid) or throw a JavaScript Error naming the op; never crash.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "./loader.js";
import type { NativeAddon, NativeTensor } from "./native.js";
import type { Tensor } from "./tensor.js";
import { rng } from "./testing/util.js";
import type { Backend } from "./types.js";

const OPS: Array<[keyof NativeAddon, number]> = [
  ["embeddingForward", 3],
  ["embeddingBackward", 3],
  ["rmsnormForward", 5],
  ["residualRmsnormForward", 7],
  ["rmsnormBackward", 6],
  ["matmul", 7],
  ["rope", 5],
  ["attentionForward", 7],
  ["attentionBackward", 11],
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

let k: Backend;
let addon: NativeAddon;
const keep: Tensor[] = [];
let pool: unknown[];

beforeAll(async () => {
  k = await loadBackend("cpu");
  const { createRequire } = await import("node:module");
  const { defaultBuildDir } = await import("./loader.js");
  addon = createRequire(import.meta.url)(`${defaultBuildDir()}/tinyllama_cpu.node`) as NativeAddon;
  const t = (shape: number[], dtype: "f32" | "bf16" | "i32" | "u16") => {
    const x = k.zeros(shape, dtype);
    keep.push(x);
    return x.native;
  };
  const disposed = k.empty([4], "f32");
  disposed.dispose();
  const tensors: NativeTensor[] = [
    t([4], "f32"),
    t([2, 4], "f32"),
    t([2, 4], "bf16"),
    t([2], "i32"),
    t([2], "u16"),
    t([1, 2, 2, 4], "f32"),
    t([1, 2, 1, 4], "f32"),
    t([1, 2, 2], "f32"),
    t([4, 4], "f32"),
    t([0], "f32"),
    t([2, 3], "i32"),
    disposed.native,
  ];
  pool = [
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
});

afterAll(() => {
  for (const t of keep) t.dispose();
});

describe("native boundary fuzz", () => {
  it("throws Errors, never crashes, on 6000 random calls", () => {
    const r = rng(12345);
    const pickArg = () => pool[Math.floor(r() * pool.length)];
    let threw = 0;
    let ran = 0;
    for (let i = 0; i < 6000; i++) {
      const [op, arity] = OPS[i % OPS.length]!;
      const n = Math.max(0, arity + Math.floor(r() * 3) - 1);
      const args = Array.from({ length: n }, pickArg);
      if (op === "sumSquares" && r() < 0.5) args[0] = Array.from({ length: 3 }, pickArg);
      try {
        (addon[op] as (...a: unknown[]) => unknown)(...args);
        ran++;
      } catch (e) {
        threw++;
        expect(e).toBeInstanceOf(Error);
        expect((e as Error).message.length).toBeGreaterThan(5);
      }
    }
    expect(threw).toBeGreaterThan(5000);
    expect(ran + threw).toBe(6000);
  });

  it("tensor methods reject garbage", () => {
    const t = k.zeros([2, 2], "f32");
    const r = rng(7);
    for (let i = 0; i < 500; i++) {
      const a = pool[Math.floor(r() * pool.length)];
      const b = pool[Math.floor(r() * pool.length)];
      const c = pool[Math.floor(r() * pool.length)];
      for (const call of <Array<() => unknown>>[
        () => t.native.view(a as number, b as number[], c as string),
        () => t.native.toHost(a as Float32Array),
        () => t.native.fromHost(a as Float32Array),
        () => k.empty(a as number[], b as "f32"),
      ]) {
        try {
          const res: unknown = call();
          if (res && typeof res === "object" && "dispose" in res)
            (res as { dispose(): void }).dispose();
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }
    }
    t.dispose();
  });

  it("Backend methods given non-tensors throw named TypeErrors", () => {
    expect(() => k.matmul(null as never, undefined as never, 3 as never)).toThrow(
      /matmul: out must be a Tensor/,
    );
    expect(() => k.sumSquares("x" as never)).toThrow(/sumSquares: expected an array of tensors/);
    expect(() =>
      k.adamw(k.zeros([1], "f32"), null, null as never, null as never, null as never, {} as never),
    ).toThrow(/adamw: grad must be a Tensor/);
    expect(() =>
      k.ropeForward(k.zeros([1, 1, 1, 2], "f32"), k.zeros([1, 1, 1, 2], "f32"), {} as never),
    ).toThrow(/rope: base must be a number/);
  });
});
