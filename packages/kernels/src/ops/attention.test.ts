import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import { attentionRef } from "../reference.js";
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

const dims = { B: 2, T: 7, H: 4, Hkv: 2, D: 8 };
const qShape = [dims.B, dims.T, dims.H, dims.D];
const kvShape = [dims.B, dims.T, dims.Hkv, dims.D];
const nq = dims.B * dims.T * dims.H * dims.D;
const nkv = dims.B * dims.T * dims.Hkv * dims.D;

describe("cpu grouped-query attention", () => {
  for (const causal of [true, false]) {
    it(`forward matches the reference (causal=${causal}), lse included`, () => {
      const r = rng(causal ? 1 : 2);
      const [q, kk, v] = [randn(r, nq), randn(r, nkv), randn(r, nkv)];
      const out = s.poisoned(qShape, "f32");
      const lse = s.poisoned([dims.B, dims.H, dims.T], "f32");
      k.attentionForward(
        out,
        lse,
        s.from(q, qShape, "f32"),
        s.from(kk, kvShape, "f32"),
        s.from(v, kvShape, "f32"),
        {
          causal,
        },
      );
      const ref = attentionRef(q, kk, v, dims, causal);
      expect(relErr(out.toFloat32(), ref.out)).toBeLessThan(1e-5);
      expect(relErr(lse.toFloat32(), ref.lse)).toBeLessThan(1e-6);
    });

    it(`backward matches finite differences for q, k, v (causal=${causal})`, () => {
      const r = rng(causal ? 3 : 4);
      const [q, kk, v, R] = [randn(r, nq), randn(r, nkv), randn(r, nkv), randn(r, nq)];
      const scale = 0.3;
      const qt = s.from(q, qShape, "f32");
      const kt = s.from(kk, kvShape, "f32");
      const vt = s.from(v, kvShape, "f32");
      const out = s.poisoned(qShape, "f32");
      const lse = s.poisoned([dims.B, dims.H, dims.T], "f32");
      k.attentionForward(out, lse, qt, kt, vt, { causal, scale });
      const [dq, dk, dv] = [
        s.poisoned(qShape, "f32"),
        s.poisoned(kvShape, "f32"),
        s.poisoned(kvShape, "f32"),
      ];
      k.attentionBackward(dq, dk, dv, s.from(R, qShape, "f32"), qt, kt, vt, out, lse, {
        causal,
        scale,
      });
      const loss = (qv: ArrayLike<number>, kv: ArrayLike<number>, vv: ArrayLike<number>) =>
        dot(attentionRef(qv, kv, vv, dims, causal, scale).out, R);
      const cq = sampleCoords(r, nq, 30);
      const ck = sampleCoords(r, nkv, 30);
      expect(
        relErr(
          pick(dq.toFloat32(), cq),
          fdGrad((x) => loss(x, kk, v), q, cq),
        ),
      ).toBeLessThan(1e-4);
      expect(
        relErr(
          pick(dk.toFloat32(), ck),
          fdGrad((x) => loss(q, x, v), kk, ck),
        ),
      ).toBeLessThan(1e-4);
      expect(
        relErr(
          pick(dv.toFloat32(), ck),
          fdGrad((x) => loss(q, kk, x), v, ck),
        ),
      ).toBeLessThan(1e-4);
    });
  }

  it("rejects heads that do not group and a wrong lse shape", () => {
    const q = s.zeros([1, 2, 3, 4], "f32");
    const kv = s.zeros([1, 2, 2, 4], "f32");
    expect(() =>
      k.attentionForward(s.zeros([1, 2, 3, 4], "f32"), s.zeros([1, 3, 2], "f32"), q, kv, kv, {
        causal: true,
      }),
    ).toThrow(/multiple of KV heads/);
    const q2 = s.zeros([1, 2, 4, 4], "f32");
    expect(() =>
      k.attentionForward(s.zeros([1, 2, 4, 4], "f32"), s.zeros([1, 2, 4], "f32"), q2, kv, kv, {
        causal: true,
      }),
    ).toThrow(/lse must have shape \[1,4,2\]/);
  });
});
