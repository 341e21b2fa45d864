// Random bad arguments at every native binding: each call must either succeed (the random
// arguments happened to be valid) or throw a JavaScript Error naming the op; never crash.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "./loader.js";
import type { NativeAddon, NativeTensor } from "./native.js";
import type { Tensor } from "./tensor.js";
import {
  fuzzNative,
  fuzzPool,
  NATIVE_OPS,
  OVERFLOW_SHAPES,
  runZeroSizeCalls,
} from "./testing/fuzz.js";
import { rng } from "./testing/util.js";
import type { Backend } from "./types.js";

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
    t([2, 0], "f32"),
    t([0, 4], "bf16"),
    t([2, 3], "i32"),
    disposed.native,
  ];
  pool = fuzzPool(tensors);
});

afterAll(() => {
  for (const t of keep) t.dispose();
});

describe("native boundary fuzz", () => {
  it("covers every function the addon exports (a new binding must join the fuzz list)", () => {
    const exported = Object.keys(addon).filter(
      (n) => typeof (addon as unknown as Record<string, unknown>)[n] === "function",
    );
    // Not ops: the tensor class, initialisation and counters.
    const notOps = new Set(["NativeTensor", "init", "stats"]);
    const fuzzed = new Set(NATIVE_OPS.map(([n]) => n as string));
    expect(exported.filter((n) => !notOps.has(n) && !fuzzed.has(n))).toEqual([]);
  });

  it("throws Errors, never crashes, on 6000 random calls", () => {
    const res = fuzzNative(addon, pool, 6000);
    expect(res.badThrows).toEqual([]);
    expect(res.threw).toBeGreaterThan(5000);
    expect(res.ran + res.threw).toBe(6000);
  });

  it("empty() and view() refuse shapes whose element count overflows int64", () => {
    const t = k.zeros([4], "f32");
    for (const s of OVERFLOW_SHAPES) {
      expect(() => addon.empty(s, "bf16"), `empty([${s}])`).toThrow(/too many elements/);
      expect(() => t.native.view(0, s, "bf16"), `view([${s}])`).toThrow(/too many elements/);
    }
    t.dispose();
  });

  it("zero-sized dimensions run as no-ops or throw, never crash", () => {
    const live = k.stats().liveTensors;
    const res = runZeroSizeCalls(k);
    expect(res.filter((r) => r.outcome.startsWith("bad throw"))).toEqual([]);
    // an empty vocabulary has no loss or argmax: a named error, not a division by zero
    const outcome = (name: string) => res.find((r) => r.name === name)?.outcome;
    expect(outcome("crossEntropy V=0")).toMatch(/crossEntropy: logits rows must not be empty/);
    expect(outcome("argmax V=0")).toMatch(/argmax: logits rows must not be empty/);
    // everything else has nothing to compute and returns
    const ran = res.filter((r) => !r.name.endsWith("V=0"));
    expect(ran.filter((r) => r.outcome !== "ran")).toEqual([]);
    expect(k.stats().liveTensors).toBe(live);
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
