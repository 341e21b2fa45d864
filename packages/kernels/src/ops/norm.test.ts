import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import { rmsnormRef } from "../reference.js";
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

const [N, C, eps] = [6, 40, 1e-5];

describe("cpu rmsnorm", () => {
  it("forward matches the reference and stores rstd", () => {
    const r = rng(1);
    const x = randn(r, N * C);
    const w = randn(r, C);
    const out = s.poisoned([2, 3, C], "f32");
    const rstd = s.poisoned([N], "f32");
    k.rmsnormForward(out, rstd, s.from(x, [2, 3, C], "f32"), s.from(w, [C], "f32"), eps);
    const ref = rmsnormRef(x, w, N, C, eps);
    expect(relErr(out.toFloat32(), ref.out)).toBeLessThan(1e-6);
    expect(relErr(rstd.toFloat32(), ref.rstd)).toBeLessThan(1e-6);
  });

  it("fused residual: residualOut = x + residual, out = rmsnorm(residualOut), in place too", () => {
    const r = rng(2);
    const x = randn(r, N * C);
    const res = randn(r, N * C);
    const w = randn(r, C);
    const sum = x.map((v, i) => v + res[i]!);
    const ref = rmsnormRef(sum, w, N, C, eps);
    const xt = s.from(x, [N, C], "f32");
    const out = s.poisoned([N, C], "f32");
    const rstd = s.poisoned([N], "f32");
    k.residualRmsnormForward(
      xt,
      out,
      rstd,
      xt,
      s.from(res, [N, C], "f32"),
      s.from(w, [C], "f32"),
      eps,
    );
    expect(relErr(xt.toFloat32(), sum)).toBeLessThan(1e-7);
    expect(relErr(out.toFloat32(), ref.out)).toBeLessThan(1e-6);
    expect(relErr(rstd.toFloat32(), ref.rstd)).toBeLessThan(1e-6);
  });

  it("backward accumulates the finite-difference gradients into dx and dWeight", () => {
    const r = rng(3);
    const x = randn(r, N * C);
    const w = randn(r, C);
    const R = randn(r, N * C);
    const dx0 = randn(r, N * C);
    const dw0 = randn(r, C);
    const rstd = s.poisoned([N], "f32");
    const xt = s.from(x, [N, C], "f32");
    const wt = s.from(w, [C], "f32");
    k.rmsnormForward(s.poisoned([N, C], "f32"), rstd, xt, wt, eps);
    const dx = s.from(dx0, [N, C], "f32");
    const dw = s.from(dw0, [C], "f32");
    k.rmsnormBackward(dx, dw, s.from(R, [N, C], "f32"), xt, wt, rstd);
    const cx = sampleCoords(r, N * C, 40);
    const fdx = fdGrad((xv) => dot(rmsnormRef(xv, w, N, C, eps).out, R), x, cx);
    const gotDx = pick(dx.toFloat32(), cx).map((v, i) => v - dx0[cx[i]!]!);
    expect(relErr(gotDx, fdx)).toBeLessThan(1e-4);
    const cw = sampleCoords(r, C, C);
    const fdw = fdGrad((wv) => dot(rmsnormRef(x, wv, N, C, eps).out, R), w, cw);
    const gotDw = dw.toFloat32().map((v, i) => v - dw0[i]!);
    expect(relErr(gotDw, fdw)).toBeLessThan(1e-4);
  });

  it("names the bad argument", () => {
    const x = s.zeros([N, C], "f32");
    expect(() =>
      k.rmsnormForward(
        s.zeros([N, C], "f32"),
        s.zeros([N], "f32"),
        x,
        s.zeros([C + 1], "f32"),
        eps,
      ),
    ).toThrow(/weight \[41\] must be \[C\] with C = 40/);
    expect(() =>
      k.rmsnormForward(
        s.zeros([N, C], "f32"),
        s.zeros([N - 1], "f32"),
        x,
        s.zeros([C], "f32"),
        eps,
      ),
    ).toThrow(/rstd must have N = 6 elements/);
    expect(() =>
      k.rmsnormForward(s.zeros([N, C], "f32"), s.zeros([N], "f32"), x, s.zeros([C], "f32"), 0),
    ).toThrow(/eps must be > 0/);
  });
});
