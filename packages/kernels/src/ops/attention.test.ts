import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import { attentionRef, ropeRef } from "../reference.js";
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

describe("cpu decode attention over a KV cache", () => {
  const { H, Hkv, D } = dims;
  const slots = 3;
  const maxLen = 9;
  const cacheShape = [slots, maxLen, Hkv, D];
  const base = 10000;

  it("matches RoPE + the cache write + attention over the slot's keys (float64 reference)", () => {
    const r = rng(5);
    const cacheK = randn(r, slots * maxLen * Hkv * D);
    const cacheV = randn(r, slots * maxLen * Hkv * D);
    const q = randn(r, 2 * H * D);
    const kNew = randn(r, 2 * Hkv * D);
    const vNew = randn(r, 2 * Hkv * D);
    const rows = [
      { slot: 2, pos: 6 },
      { slot: 0, pos: 0 },
    ];
    const kc = s.from(cacheK, cacheShape, "f32");
    const vc = s.from(cacheV, cacheShape, "f32");
    const out = s.poisoned([2, H, D], "f32");
    const meta = s.from(Int32Array.from([2, 0, 6, 0]), [2, 2], "i32");
    const qT = s.from(q, [2, H, D], "f32");
    k.decodeAttention(
      out,
      qT,
      s.from(kNew, [2, Hkv, D], "f32"),
      s.from(vNew, [2, Hkv, D], "f32"),
      kc,
      vc,
      meta,
      {
        ropeBase: base,
      },
    );
    expect(Array.from(qT.toFloat32())).toEqual(Array.from(q)); // inputs untouched
    const got = out.toFloat32();
    const gotK = kc.toFloat32();
    const gotV = vc.toFloat32();
    for (const [i, { slot, pos }] of rows.entries()) {
      const row = (a: Float32Array, heads: number) =>
        a.subarray(i * heads * D, (i + 1) * heads * D);
      const kRot = ropeRef(row(kNew, Hkv), [1, 1, Hkv, D], base, pos);
      const at = (slot * maxLen + pos) * Hkv * D;
      expect(relErr(gotK.subarray(at, at + Hkv * D), kRot)).toBeLessThan(1e-6);
      expect(Array.from(gotV.subarray(at, at + Hkv * D))).toEqual(Array.from(row(vNew, Hkv)));
      // Reference: the slot's keys 0..pos (the new one included), the rotated query.
      const keys = Float64Array.from(
        gotK.subarray(slot * maxLen * Hkv * D, (slot * maxLen + pos + 1) * Hkv * D),
      );
      const vals = Float64Array.from(
        gotV.subarray(slot * maxLen * Hkv * D, (slot * maxLen + pos + 1) * Hkv * D),
      );
      const qRot = ropeRef(row(q, H), [1, 1, H, D], base, pos);
      // One query row against pos+1 keys: non-causal attention of a length-1 query block.
      const want = new Float64Array(H * D);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / Hkv));
        const sc = Array.from({ length: pos + 1 }, (_, j) => {
          let d0 = 0;
          for (let d = 0; d < D; d++) d0 += qRot[h * D + d]! * keys[(j * Hkv + g) * D + d]!;
          return d0 / Math.sqrt(D);
        });
        const mx = Math.max(...sc);
        const e = sc.map((x) => Math.exp(x - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= pos; j++)
          for (let d = 0; d < D; d++)
            want[h * D + d]! += (e[j]! / z) * vals[(j * Hkv + g) * D + d]!;
      }
      expect(relErr(row(got, H), want)).toBeLessThan(1e-5);
    }
    // Other cache rows are untouched.
    expect(gotK[(1 * maxLen + 3) * Hkv * D]).toBe(cacheK[(1 * maxLen + 3) * Hkv * D]);
  });

  it("gives the bits of the last row of rope + causal attention over the same cache (f32 and bf16)", () => {
    for (const dtype of ["f32", "bf16"] as const) {
      const r = rng(dtype === "f32" ? 6 : 7);
      const T = 5;
      const qAll = randn(r, T * H * D);
      const kAll = randn(r, T * Hkv * D);
      const vAll = randn(r, T * Hkv * D);
      // Full path: rope over all T positions, causal attention, keep row T-1.
      const qf = s.from(qAll, [1, T, H, D], dtype);
      const kf = s.from(kAll, [1, T, Hkv, D], dtype);
      k.ropeForward(qf, qf, { base: 10000 });
      k.ropeForward(kf, kf, { base: 10000 });
      const outF = s.poisoned([1, T, H, D], dtype);
      k.attentionForward(
        outF,
        s.poisoned([1, H, T], "f32"),
        qf,
        kf,
        s.from(vAll, [1, T, Hkv, D], dtype),
        {
          causal: true,
        },
      );
      // Decode path: the cache holds rotated keys 0..T-2; the step adds position T-1.
      const kc = s.zeros([1, T, Hkv, D], dtype);
      const vc = s.from(vAll, [1, T, Hkv, D], dtype);
      kc.copyFromHost(kf.toFloat32().map((x, i) => (i < (T - 1) * Hkv * D ? x : 0)));
      const out = s.poisoned([1, H, D], dtype);
      k.decodeAttention(
        out,
        s.from(qAll.subarray((T - 1) * H * D), [1, H, D], dtype),
        s.from(kAll.subarray((T - 1) * Hkv * D), [1, Hkv, D], dtype),
        s.from(vAll.subarray((T - 1) * Hkv * D), [1, Hkv, D], dtype),
        kc,
        vc,
        s.from(Int32Array.from([0, T - 1]), [2, 1], "i32"),
        { ropeBase: 10000 },
      );
      expect(Array.from(out.toFloat32())).toEqual(
        Array.from(outF.toFloat32().subarray((T - 1) * H * D)),
      );
      expect(Array.from(kc.toFloat32())).toEqual(Array.from(kf.toFloat32()));
    }
  });

  it("refuses bad meta values and shapes with errors naming them", () => {
    const kc = s.zeros(cacheShape, "f32");
    const vc = s.zeros(cacheShape, "f32");
    const q = s.zeros([2, H, D], "f32");
    const kv = s.zeros([2, Hkv, D], "f32");
    const out = s.zeros([2, H, D], "f32");
    const run = (meta: number[], qq = q, opt = { ropeBase: 10000 }, rows = meta.length / 2) =>
      k.decodeAttention(
        out,
        qq,
        kv,
        kv,
        kc,
        vc,
        s.from(Int32Array.from(meta), [2, rows], "i32"),
        opt,
      );
    expect(() => run([0, 3, 0, 0])).toThrow(/meta slot\[1\] = 3 is outside \[0, 3\)/);
    expect(() => run([0, 1, 0, 9])).toThrow(/meta position\[1\] = 9 is outside \[0, 9\)/);
    expect(() => run([1, 1, 0, 0])).toThrow(/slot 1 appears twice/);
    expect(() => run([0, 0], q, { ropeBase: 10000 }, 1)).toThrow(/meta.*\[2,2\]/);
    expect(() => run([0, 1, 0, 0], s.zeros([2, H, D], "bf16"))).toThrow(/dtype/);
    expect(() => run([0, 1, 0, 0], q, { ropeBase: 1 })).toThrow(/ropeBase must be > 1/);
  });
});
