import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import { ropeRef } from "../reference.js";
import { dot, fdGrad, pick, sampleCoords } from "../testing/fd.js";
import { randn, relErr, rng, Scope } from "../testing/util.js";
import type { Backend } from "../types.js";

let k: Backend;
let s: Scope;
beforeAll(async () => {
  k = await loadBackend("cpu");
  s = new Scope(k);
});
afterEach(() => s.dispose());

const shape = [2, 9, 3, 16] as const;
const n = 2 * 9 * 3 * 16;

describe("cpu rope (HF rotate-half)", () => {
  it("forward matches the reference, with a position offset, in place", () => {
    const r = rng(1);
    const x = randn(r, n);
    const t = s.from(x, shape, "f32");
    k.ropeForward(t, t, { base: 10000, positionOffset: 5 });
    expect(relErr(t.toFloat32(), ropeRef(x, shape, 10000, 5))).toBeLessThan(2e-6);
  });

  it("position 0 is the identity and the rotation keeps each pair's norm", () => {
    const r = rng(2);
    const x = randn(r, 16);
    const out = s.poisoned([1, 1, 1, 16], "f32");
    k.ropeForward(out, s.from(x, [1, 1, 1, 16], "f32"), { base: 10000 });
    expect(relErr(out.toFloat32(), x)).toBe(0);
  });

  it("backward is the transpose (finite differences)", () => {
    const r = rng(3);
    const x = randn(r, n);
    const R = randn(r, n);
    const dx = s.poisoned(shape, "f32");
    k.ropeBackward(dx, s.from(R, shape, "f32"), { base: 10000, positionOffset: 3 });
    const coords = sampleCoords(r, n, 60);
    const fd = fdGrad((xv) => dot(ropeRef(xv, shape, 10000, 3), R), x, coords);
    expect(relErr(pick(dx.toFloat32(), coords), fd)).toBeLessThan(1e-5);
  });

  it("rejects odd head dims and non-4D input", () => {
    expect(() =>
      k.ropeForward(s.zeros([1, 2, 1, 3], "f32"), s.zeros([1, 2, 1, 3], "f32"), { base: 10000 }),
    ).toThrow(/head dim D must be even/);
    expect(() =>
      k.ropeForward(s.zeros([2, 4], "f32"), s.zeros([2, 4], "f32"), { base: 10000 }),
    ).toThrow(/x must have 4 dimensions/);
  });
});
