import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import { adamwRef, roundBf16 } from "../reference.js";
import { randn, relErr, rng, Scope } from "../testing/util.js";
import type { Backend } from "../types.js";

let k: Backend;
let s: Scope;
beforeAll(async () => {
  k = await loadBackend("cpu");
  s = new Scope(k);
});
afterEach(() => s.dispose());

const opts = {
  lr: 4e-4,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-5,
  weightDecay: 0.1,
  step: 3,
  gradScale: 0.5,
};

describe("cpu adamw and grad norm", () => {
  it("matches torch.optim.AdamW on an f32 param", () => {
    const r = rng(1);
    const n = 1000;
    const [w, g, m] = [randn(r, n), randn(r, n), randn(r, n, 0.1)];
    const v = randn(r, n, 0.1).map((x) => x * x);
    const [wt, mt, vt] = [s.from(w, [n], "f32"), s.from(m, [n], "f32"), s.from(v, [n], "f32")];
    k.adamw(wt, null, s.from(g, [n], "f32"), mt, vt, opts);
    const ref = adamwRef(w, g, m, v, opts);
    expect(relErr(wt.toFloat32(), ref.w)).toBeLessThan(1e-6);
    expect(relErr(mt.toFloat32(), ref.m)).toBeLessThan(1e-6);
    expect(relErr(vt.toFloat32(), ref.v)).toBeLessThan(1e-6);
  });

  it("updates the f32 master and writes the rounded bf16 copy", () => {
    const r = rng(2);
    const n = 300;
    const [w, g] = [randn(r, n), randn(r, n)];
    const master = s.from(w, [n], "f32");
    const param = s.poisoned([n], "bf16");
    k.adamw(param, master, s.from(g, [n], "f32"), s.zeros([n], "f32"), s.zeros([n], "f32"), {
      ...opts,
      step: 1,
    });
    const ref = adamwRef(w, g, new Float32Array(n), new Float32Array(n), { ...opts, step: 1 });
    expect(relErr(master.toFloat32(), ref.w)).toBeLessThan(1e-6);
    const m = master.toFloat32();
    expect(Array.from(param.toFloat32())).toEqual(Array.from(m, roundBf16));
  });

  it("refuses a bf16 param without a master and mismatched sizes", () => {
    const z = (n: number) => s.zeros([n], "f32");
    expect(() => k.adamw(s.zeros([4], "bf16"), null, z(4), z(4), z(4), opts)).toThrow(
      /needs an f32 master/,
    );
    expect(() => k.adamw(z(4), null, z(5), z(4), z(4), opts)).toThrow(/grad must have 4 elements/);
    expect(() => k.adamw(z(4), null, z(4), z(4), z(4), { ...opts, step: 0 })).toThrow(
      /step must be an integer/,
    );
  });

  it("sumSquares is exact-ish and deterministic across tensors", () => {
    const r = rng(3);
    const a = randn(r, 100_000);
    const b = randn(r, 77);
    const want = [...a, ...b].reduce((acc, x) => acc + x * x, 0);
    const ts = [s.from(a, [100_000], "f32"), s.from(b, [7, 11], "f32")];
    const got = k.sumSquares(ts);
    expect(Math.abs(got - want) / want).toBeLessThan(1e-12);
    expect(k.sumSquares(ts)).toBe(got);
    expect(k.sum(ts[1]!)).toBeCloseTo(
      b.reduce((acc, x) => acc + x, 0),
      10,
    );
  });
});
