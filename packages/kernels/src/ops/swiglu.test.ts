import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import { swigluRef } from "../reference.js";
import { dot, fdGrad } from "../testing/fd.js";
import { randn, relErr, rng, Scope } from "../testing/util.js";
import type { Backend } from "../types.js";

let k: Backend;
let s: Scope;
beforeAll(async () => {
  k = await loadBackend("cpu");
  s = new Scope(k);
});
afterEach(() => s.dispose());

describe("cpu swiglu", () => {
  const n = 200;
  it("forward: silu(gate) * up", () => {
    const r = rng(1);
    const [g, u] = [randn(r, n, 3), randn(r, n)];
    const out = s.poisoned([10, 20], "f32");
    k.swigluForward(out, s.from(g, [10, 20], "f32"), s.from(u, [10, 20], "f32"));
    expect(relErr(out.toFloat32(), swigluRef(g, u))).toBeLessThan(1e-6);
  });

  it("backward matches finite differences, also written over its inputs", () => {
    const r = rng(2);
    const [g, u, R] = [randn(r, n, 3), randn(r, n), randn(r, n)];
    const coords = Array.from({ length: n }, (_, i) => i);
    const fdG = fdGrad((x) => dot(swigluRef(x, u), R), g, coords);
    const fdU = fdGrad((x) => dot(swigluRef(g, x), R), u, coords);
    const gt = s.from(g, [n], "f32");
    const ut = s.from(u, [n], "f32");
    k.swigluBackward(gt, ut, s.from(R, [n], "f32"), gt, ut);
    expect(relErr(gt.toFloat32(), fdG)).toBeLessThan(1e-5);
    expect(relErr(ut.toFloat32(), fdU)).toBeLessThan(1e-5);
  });
});
