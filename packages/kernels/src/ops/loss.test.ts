import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import { crossEntropyRef } from "../reference.js";
import { fdGrad } from "../testing/fd.js";
import { randInts, randn, relErr, rng, Scope } from "../testing/util.js";
import type { Backend } from "../types.js";

let k: Backend;
let s: Scope;
beforeAll(async () => {
  k = await loadBackend("cpu");
  s = new Scope(k);
});
afterEach(() => s.dispose());

const [N, V] = [5, 37];

describe("cpu fused cross-entropy", () => {
  it("losses match and logits become (softmax - onehot) * dlossScale (finite differences)", () => {
    const r = rng(1);
    const logits = randn(r, N * V, 4);
    const targets = randInts(r, N, V);
    targets[2] = -1; // ignored position
    const losses = s.poisoned([N], "f32");
    const lt = s.from(logits, [N, V], "f32");
    const scale = 1 / 8;
    k.crossEntropy(losses, lt, s.from(targets, [N], "i32"), {
      computeGrad: true,
      dlossScale: scale,
    });
    const ref = crossEntropyRef(logits, targets, N, V, scale);
    expect(relErr(losses.toFloat32(), ref.losses)).toBeLessThan(1e-6);
    expect(losses.toFloat32()[2]).toBe(0);
    const coords = Array.from({ length: N * V }, (_, i) => i);
    const fd = fdGrad(
      (x) => crossEntropyRef(x, targets, N, V).losses.reduce((a, b) => a + b, 0) * scale,
      logits,
      coords,
    );
    expect(relErr(lt.toFloat32(), fd)).toBeLessThan(1e-4);
  });

  it("leaves logits alone without computeGrad", () => {
    const r = rng(2);
    const logits = randn(r, N * V);
    const lt = s.from(logits, [N, V], "f32");
    k.crossEntropy(s.poisoned([N], "f32"), lt, s.from(randInts(r, N, V), [N], "i32"), {
      computeGrad: false,
    });
    expect(relErr(lt.toFloat32(), logits)).toBe(0);
  });

  it("rejects targets >= V", () => {
    const lt = s.zeros([2, V], "f32");
    expect(() =>
      k.crossEntropy(s.zeros([2], "f32"), lt, s.from(new Int32Array([0, V]), [2], "i32"), {
        computeGrad: true,
      }),
    ).toThrow(/targets\[1\] = 37 is outside/);
  });
});

describe("cpu argmax over rows", () => {
  it("is torch.argmax: the first of equal maxima, a NaN counts as the maximum", () => {
    const V2 = 6;
    const rows = [
      [1, 5, 5, 2, 0, 5], // ties: the first
      [-3, -1, -2, -1, -9, -4], // all negative
      [0, 1, Number.NaN, 9, Number.NaN, 2], // the first NaN
      [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, -1e30, 0, 0, 0],
      [7, 7, 7, 7, 7, 7], // all equal: index 0
    ];
    const want = [1, 1, 2, 3, 0];
    for (const dtype of ["f32", "bf16"] as const) {
      const out = s.poisoned([rows.length], "i32");
      k.argmax(out, s.from(Float32Array.from(rows.flat()), [rows.length, V2], dtype));
      expect(Array.from(out.toHost()), dtype).toEqual(want);
    }
  });

  it("agrees with a scan of random rows at the vocabulary's width", () => {
    const r = rng(3);
    const rowsN = 7;
    const V2 = 32000;
    const x = randn(r, rowsN * V2, 3);
    const out = s.poisoned([rowsN], "i32");
    k.argmax(out, s.from(x, [rowsN, V2], "f32"));
    const want = Array.from({ length: rowsN }, (_, n) => {
      let best = 0;
      for (let j = 1; j < V2; j++) if (x[n * V2 + j]! > x[n * V2 + best]!) best = j;
      return best;
    });
    expect(Array.from(out.toHost())).toEqual(want);
  });

  it("checks its arguments", () => {
    expect(() => k.argmax(s.zeros([2], "f32"), s.zeros([2, V], "f32"))).toThrow(
      /argmax: out must be i32, got f32/,
    );
    expect(() => k.argmax(s.zeros([3], "i32"), s.zeros([2, V], "f32"))).toThrow(
      /argmax: out must have N = 2 elements/,
    );
    expect(() => k.argmax(s.zeros([2], "i32"), s.zeros([2], "i32"))).toThrow(
      /argmax: logits must be f32 or bf16/,
    );
    expect(() => k.argmax(s.zeros([2], "i32"), s.zeros([2 * V], "f32"))).toThrow(
      /argmax: logits must be \[N, V\]/,
    );
  });
});
