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
