/**
 * The cross-backend suite: every op on a backend under test (CUDA, or the CPU in bf16) against
 * the CPU backend in f32 on the same random inputs (rounded to the tested dtype first, so only
 * the computation differs), outputs poisoned with NaN before each run. Shared by the vitest
 * suite and the GPU check script (tools/gpu), so both run exactly the same checks.
 */
import { roundBf16 } from "../reference.js";
import type { Tensor } from "../tensor.js";
import type { Backend, DType } from "../types.js";
import { randInts, randn, relErr, rng, Scope } from "./util.js";

/** The tensors' values as stored, concatenated, for bitwise comparisons. */
function storedBits(ts: Tensor[]): Buffer {
  return Buffer.concat(ts.map((t) => Buffer.from(t.toFloat32().buffer)));
}

export interface Check {
  name: string;
  err: number;
  tol: number;
}

export interface CrossCase {
  name: string;
  run(x: Backend, ref: Backend, dtype: DType, seed: number): Check[];
}

/** Tolerance on ‖got − want‖/‖want‖ by dtype (bf16 storage of inputs and outputs). */
export function tolFor(dtype: DType, f32 = 1e-4, bf16 = 2e-2): number {
  return dtype === "bf16" ? bf16 : f32;
}

class Pair {
  readonly xs: Scope;
  readonly rs: Scope;
  constructor(
    readonly x: Backend,
    readonly ref: Backend,
    readonly dtype: DType,
  ) {
    this.xs = new Scope(x);
    this.rs = new Scope(ref);
  }
  /** Same values on both sides: rounded to bf16 when testing bf16. */
  data(a: Float32Array, dtype = this.dtype): Float32Array {
    return dtype === "bf16" ? a.map(roundBf16) : a;
  }
  /** [tensor under test, reference tensor] holding the same values. */
  both(a: Float32Array, shape: readonly number[], dtype = this.dtype): [Tensor, Tensor] {
    const v = this.data(a, dtype);
    return [this.xs.from(v, shape, dtype), this.rs.from(v, shape, "f32")];
  }
  ints(a: Int32Array, shape: readonly number[]): [Tensor, Tensor] {
    return [this.xs.from(a, shape, "i32"), this.rs.from(a, shape, "i32")];
  }
  out(shape: readonly number[], dtype = this.dtype): [Tensor, Tensor] {
    return [this.xs.poisoned(shape, dtype), this.rs.poisoned(shape, "f32")];
  }
  check(name: string, got: Tensor, want: Tensor, tol = tolFor(this.dtype)): Check {
    this.x.synchronize();
    return { name, err: relErr(got.toFloat32(), want.toFloat32()), tol };
  }
  dispose(): void {
    this.xs.dispose();
    this.rs.dispose();
  }
}

function withPair(x: Backend, ref: Backend, dtype: DType, f: (p: Pair) => Check[]): Check[] {
  const p = new Pair(x, ref, dtype);
  try {
    return f(p);
  } finally {
    p.dispose();
  }
}

export interface SuiteShapes {
  N: number;
  C: number;
  I: number;
  V: number;
  B: number;
  T: number;
  H: number;
  Hkv: number;
  D: number;
}

export const SMALL: SuiteShapes = {
  N: 96,
  C: 256,
  I: 384,
  V: 1000,
  B: 2,
  T: 67,
  H: 8,
  Hkv: 2,
  D: 64,
};

export function crossCases(sh: SuiteShapes = SMALL): CrossCase[] {
  const { N, C, I, V, B, T, H, Hkv, D } = sh;
  return [
    {
      name: "matmul (transposes, accumulate, alpha)",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const checks: Check[] = [];
          const [M, Nn, K] = [N, 3 * 40, C];
          for (const [transA, transB] of [
            [false, false],
            [false, true],
            [true, false],
            [true, true],
          ] as const) {
            const [a, ar] = p.both(randn(r, M * K), transA ? [K, M] : [M, K]);
            const [b, br] = p.both(randn(r, K * Nn), transB ? [Nn, K] : [K, Nn]);
            for (const outDtype of ["f32", p.dtype] as const) {
              const [o, or] = p.out([M, Nn], outDtype);
              x.matmul(o, a, b, { transA, transB });
              ref.matmul(or, ar, br, { transA, transB });
              checks.push(p.check(`tA=${transA} tB=${transB} out=${outDtype}`, o, or));
            }
          }
          const [a, ar] = p.both(randn(r, M * K), [M, K]);
          const [b, br] = p.both(randn(r, K * Nn), [K, Nn]);
          const [o, or] = p.both(randn(r, M * Nn), [M, Nn], "f32");
          x.matmul(o, a, b, { accumulate: true, alpha: 0.25 });
          ref.matmul(or, ar, br, { accumulate: true, alpha: 0.25 });
          checks.push(p.check("accumulate alpha=0.25", o, or));
          return checks;
        }),
    },
    {
      name: "embedding forward/backward (deterministic)",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const checks: Check[] = [];
          // C: the vectorised CUDA path; 100: rows not a multiple of 16 bytes (scalar path);
          // skewed: one id holds ~70% of the positions, as a frequent token does in real text
          // (a segment longer than a warp's 32-position scan and than the 8 warps of a block)
          for (const [C, skewed] of [
            [sh.C, false],
            [100, false],
            [sh.C, true],
          ] as const) {
            const [table, tr] = p.both(randn(r, V * C), [V, C]);
            const idv = randInts(r, N, 17);
            if (skewed) for (let i = 0; i < N; i++) if (r() < 0.7) idv[i] = 3;
            const [ids, ir] = p.ints(idv, [N]);
            const [o, or] = p.out([N, C]);
            x.embeddingForward(o, table, ids);
            ref.embeddingForward(or, tr, ir);
            const [dOut, dr] = p.both(randn(r, N * C), [N, C]);
            const d0 = randn(r, V * C);
            const [dt, dtr] = p.both(d0, [V, C], "f32");
            x.embeddingBackward(dt, dOut, ids);
            ref.embeddingBackward(dtr, dr, ir);
            const first = dt.toFloat32();
            dt.copyFromHost(d0);
            x.embeddingBackward(dt, dOut, ids);
            const same = Buffer.from(first.buffer).equals(Buffer.from(dt.toFloat32().buffer));
            const tag = `C=${C}${skewed ? " skewed ids" : ""}`;
            checks.push(
              p.check(`forward ${tag}`, o, or, 0),
              p.check(`backward ${tag}`, dt, dtr, 1e-5),
              { name: `backward bitwise repeatable ${tag}`, err: same ? 0 : 1, tol: 0 },
            );
          }
          return checks;
        }),
    },
    {
      name: "rmsnorm forward, fused residual, backward",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const eps = 1e-5;
          const checks: Check[] = [];
          // C: the vectorised CUDA path (C % 256 == 0), rows: N (whole 32-row chunks of the
          // dWeight sums) and N - 5 (a partial last chunk); C - 56: the scalar path
          for (const [C, N] of [
            [sh.C, sh.N],
            [sh.C, sh.N - 5],
            [sh.C - 56, sh.N],
          ] as const) {
            const [xt, xr] = p.both(randn(r, N * C), [N, C]);
            const [res, rr] = p.both(randn(r, N * C), [N, C]);
            const [w, wr] = p.both(
              randn(r, C, 0.5).map((v) => v + 1),
              [C],
            );
            const [ro, ror] = p.out([N, C]);
            const [o, or] = p.out([N, C]);
            const [rs, rsr] = p.out([N], "f32");
            x.residualRmsnormForward(ro, o, rs, xt, res, w, eps);
            ref.residualRmsnormForward(ror, or, rsr, xr, rr, wr, eps);
            checks.push(
              p.check(`residual sum C=${C}`, ro, ror),
              p.check(`normed C=${C}`, o, or),
              p.check(`rstd C=${C}`, rs, rsr),
            );
            // backward on the reference's own residual values (so both see the same x)
            const xs = p.data(ror.toFloat32());
            const [x2, x2r] = p.both(xs, [N, C]);
            const [o2, o2r] = p.out([N, C]);
            const [rs2, rs2r] = p.out([N], "f32");
            x.rmsnormForward(o2, rs2, x2, w, eps);
            ref.rmsnormForward(o2r, rs2r, x2r, wr, eps);
            checks.push(p.check(`plain forward C=${C}`, o2, o2r));
            const [dOut, dOutR] = p.both(randn(r, N * C), [N, C]);
            const [dx, dxr] = p.both(randn(r, N * C), [N, C], "f32");
            const [dw, dwr] = p.both(randn(r, C), [C], "f32");
            x.rmsnormBackward(dx, dw, dOut, x2, w, rs2);
            ref.rmsnormBackward(dxr, dwr, dOutR, x2r, wr, rs2r);
            checks.push(
              p.check(`dx (accumulated) C=${C}`, dx, dxr),
              p.check(`dWeight C=${C}`, dw, dwr),
            );
            // dx in the suite's dtype, as the trainer keeps the residual gradient (bf16: the
            // CUDA backend's register-row and staged kernels, which need all three in bf16)
            const [dxm, dxmr] = p.both(randn(r, N * C), [N, C]);
            const [dwm, dwmr] = p.both(randn(r, C), [C], "f32");
            x.rmsnormBackward(dxm, dwm, dOut, x2, w, rs2);
            ref.rmsnormBackward(dxmr, dwmr, dOutR, x2r, wr, rs2r);
            checks.push(
              p.check(`dx ${dtype} (accumulated) C=${C}`, dxm, dxmr),
              p.check(`dWeight, dx ${dtype} C=${C}`, dwm, dwmr),
            );
          }
          return checks;
        }),
    },
    {
      name: "rope forward/backward",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const checks: Check[] = [];
          // D: the vectorised CUDA path (D / 2 % 8 == 0); 12: the scalar path
          for (const d of [D, 12]) {
            const shape = [B, T, H, d];
            const [xt, xr] = p.both(randn(r, B * T * H * d), shape);
            const [o, or] = p.out(shape);
            const opt = { base: 10000, positionOffset: 7 };
            x.ropeForward(o, xt, opt);
            ref.ropeForward(or, xr, opt);
            const [dx, dxr] = p.out(shape);
            x.ropeBackward(dx, xt, opt);
            ref.ropeBackward(dxr, xr, opt);
            checks.push(p.check(`forward D=${d}`, o, or), p.check(`backward D=${d}`, dx, dxr));
          }
          // The CUDA backend keeps the last cos/sin table while calls repeat its key (T, D, base,
          // offset): a sequence that changes each part of the key, and repeats one, must match.
          const calls: [number, number, number][] = [
            [T, 10000, 0],
            [T, 500000, 0],
            [T, 10000, 7],
            [T, 10000, 7],
            [T - 5, 10000, 7],
            [T, 10000, 7],
          ];
          for (const [i, [t, base, positionOffset]] of calls.entries()) {
            const shape = [B, t, H, D];
            const [xt, xr] = p.both(randn(r, B * t * H * D), shape);
            const [o, or] = p.out(shape);
            x.ropeForward(o, xt, { base, positionOffset });
            ref.ropeForward(or, xr, { base, positionOffset });
            checks.push(
              p.check(
                `forward, table key ${i} (T=${t} base=${base} offset=${positionOffset})`,
                o,
                or,
              ),
            );
          }
          return checks;
        }),
    },
    {
      name: "attention forward/backward (GQA, causal)",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const qs = [B, T, H, D];
          const ks = [B, T, Hkv, D];
          const [q, qr] = p.both(randn(r, B * T * H * D), qs);
          const [k, kr] = p.both(randn(r, B * T * Hkv * D), ks);
          const [v, vr] = p.both(randn(r, B * T * Hkv * D), ks);
          const checks: Check[] = [];
          for (const causal of [true, false]) {
            const [o, or] = p.out(qs);
            const [l, lr] = p.out([B, H, T], "f32");
            x.attentionForward(o, l, q, k, v, { causal });
            ref.attentionForward(or, lr, qr, kr, vr, { causal });
            checks.push(
              p.check(`out causal=${causal}`, o, or),
              p.check(`lse causal=${causal}`, l, lr, 1e-3),
            );
            // backward from the reference's forward results so both sides see the same out/lse
            const [o2] = p.both(or.toFloat32(), qs);
            const [l2] = p.both(lr.toFloat32(), [B, H, T], "f32");
            const [dO, dOr] = p.both(randn(r, B * T * H * D), qs);
            const [dq, dqr] = p.out(qs);
            const [dk, dkr] = p.out(ks);
            const [dv, dvr] = p.out(ks);
            x.attentionBackward(dq, dk, dv, dO, q, k, v, o2, l2, { causal });
            ref.attentionBackward(dqr, dkr, dvr, dOr, qr, kr, vr, or, lr, { causal });
            checks.push(
              p.check(`dq causal=${causal}`, dq, dqr, tolFor(dtype, 1e-4, 3e-2)),
              p.check(`dk causal=${causal}`, dk, dkr, tolFor(dtype, 1e-4, 3e-2)),
              p.check(`dv causal=${causal}`, dv, dvr, tolFor(dtype, 1e-4, 3e-2)),
            );
            // Same inputs, same bits: training resumes and reruns exactly (an opt-in backward
            // that accumulates with atomics fails this, as it should say).
            const fwdBits = storedBits([o, l]);
            const bwdBits = storedBits([dq, dk, dv]);
            const [o3] = p.out(qs);
            const [l3] = p.out([B, H, T], "f32");
            const [dq3] = p.out(qs);
            const [dk3] = p.out(ks);
            const [dv3] = p.out(ks);
            x.attentionForward(o3, l3, q, k, v, { causal });
            x.attentionBackward(dq3, dk3, dv3, dO, q, k, v, o2, l2, { causal });
            const fwdSame = fwdBits.equals(storedBits([o3, l3]));
            const bwdSame = bwdBits.equals(storedBits([dq3, dk3, dv3]));
            checks.push(
              { name: `forward bitwise repeatable causal=${causal}`, err: fwdSame ? 0 : 1, tol: 0 },
              {
                name: `backward bitwise repeatable causal=${causal}`,
                err: bwdSame ? 0 : 1,
                tol: 0,
              },
            );
          }
          return checks;
        }),
    },
    {
      name: "decode attention over a KV cache (RoPE, cache write, GQA)",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const slots = 3;
          const S = 2;
          const cs = [slots, T, Hkv, D];
          const [kc, kcr] = p.both(randn(r, slots * T * Hkv * D), cs);
          const [vc, vcr] = p.both(randn(r, slots * T * Hkv * D), cs);
          const [q, qr] = p.both(randn(r, S * H * D), [S, H, D]);
          const [kn, knr] = p.both(randn(r, S * Hkv * D), [S, Hkv, D]);
          const [vn, vnr] = p.both(randn(r, S * Hkv * D), [S, Hkv, D]);
          // Rows: slot 2 at the last position, slot 0 at position 5.
          const [meta, metar] = p.ints(Int32Array.from([2, 0, T - 1, 5]), [2, S]);
          const [o, or] = p.out([S, H, D]);
          const opt = { ropeBase: 10000 };
          x.decodeAttention(o, q, kn, vn, kc, vc, meta, opt);
          ref.decodeAttention(or, qr, knr, vnr, kcr, vcr, metar, opt);
          return [p.check("out", o, or), p.check("kCache", kc, kcr), p.check("vCache", vc, vcr)];
        }),
    },
    {
      name: "swiglu forward/backward",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const checks: Check[] = [];
          // [N, I]: the vectorised CUDA path (8 elements a thread); [7, 13]: the scalar path
          for (const [rows, cols] of [
            [N, I],
            [7, 13],
          ] as const) {
            const n = rows * cols;
            const [g, gr] = p.both(randn(r, n, 2), [rows, cols]);
            const [u, ur] = p.both(randn(r, n), [rows, cols]);
            const [o, or] = p.out([rows, cols]);
            x.swigluForward(o, g, u);
            ref.swigluForward(or, gr, ur);
            const [dO, dOr] = p.both(randn(r, n), [rows, cols]);
            const [dg, dgr] = p.out([rows, cols]);
            const [du, dur] = p.out([rows, cols]);
            x.swigluBackward(dg, du, dO, g, u);
            ref.swigluBackward(dgr, dur, dOr, gr, ur);
            const tag = `${rows}x${cols}`;
            checks.push(
              p.check(`forward ${tag}`, o, or),
              p.check(`dGate ${tag}`, dg, dgr),
              p.check(`dUp ${tag}`, du, dur),
            );
          }
          return checks;
        }),
    },
    {
      name: "cross-entropy fused with the logits gradient",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const checks: Check[] = [];
          // CUDA paths: V % 8 == 0 the vector kernel (also at Llama's 32000, and at 32776), V + 4
          // the scalar kernel.
          for (const [v, rows] of [
            [V, N],
            [V + 4, N],
            [32000, 5],
            [32776, 5],
          ] as const) {
            const [lg, lgr] = p.both(randn(r, rows * v, 3), [rows, v]);
            const tg = randInts(r, rows, v);
            tg[3] = -1;
            const [t, tr] = p.ints(tg, [rows]);
            const [ls, lsr] = p.out([rows], "f32");
            const opt = { computeGrad: true, dlossScale: 1 / rows };
            x.crossEntropy(ls, lg, t, opt);
            ref.crossEntropy(lsr, lgr, tr, opt);
            checks.push(
              p.check(`losses V=${v}`, ls, lsr, tolFor(dtype, 1e-5, 1e-3)),
              p.check(`dlogits V=${v}`, lg, lgr),
            );
          }
          return checks;
        }),
    },
    {
      name: "argmax over rows (first maximum, NaN wins)",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const checks: Check[] = [];
          for (const [v, rows] of [
            [V, N],
            [V + 3, 7],
            [32000, 9],
            [32776, 3],
          ] as const) {
            // Coarse values (multiples of 1/4 in [-8, 8)) so rows hold equal maxima, as bf16
            // logits often do; one row with a NaN.
            const a = randn(r, rows * v, 3).map(
              (u) => Math.round(Math.max(-8, Math.min(7.75, u)) * 4) / 4,
            );
            a[2 * v + 17] = Number.NaN;
            const [lg, lgr] = p.both(a, [rows, v]);
            const [o, or] = p.ints(new Int32Array(rows).fill(-7), [rows]);
            x.argmax(o, lg);
            ref.argmax(or, lgr);
            x.synchronize();
            const got = o.toHost();
            const want = or.toHost();
            let mismatches = 0;
            for (let i = 0; i < rows; i++) if (got[i] !== want[i]) mismatches++;
            checks.push({ name: `indices V=${v} (${rows} rows)`, err: mismatches, tol: 0 });
          }
          return checks;
        }),
    },
    {
      name: "adamw (bf16 param + f32 master, or f32 param)",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const checks: Check[] = [];
          // 5000: the 4-wide CUDA path; 4999: the scalar path
          for (const n of [5000, 4999]) {
            const opt = {
              lr: 1e-3,
              beta1: 0.9,
              beta2: 0.95,
              eps: 1e-8,
              weightDecay: 0.1,
              step: 5,
              gradScale: 0.7,
            };
            const w = randn(r, n);
            const [g, gr] = p.both(randn(r, n), [n], "f32");
            const [m, mr] = p.both(randn(r, n, 0.1), [n], "f32");
            const [v, vr] = p.both(
              randn(r, n, 0.1).map((a) => a * a),
              [n],
              "f32",
            );
            const [mw, mwr] = p.both(w, [n], "f32");
            if (dtype === "bf16") {
              const [pp] = p.out([n], "bf16");
              x.adamw(pp, mw, g, m, v, opt);
              ref.adamw(mwr, null, gr, mr, vr, opt);
              const rounded = p.rs.from(mwr.toFloat32().map(roundBf16), [n], "f32");
              checks.push(
                p.check(`master n=${n}`, mw, mwr, 1e-6),
                p.check(`bf16 param n=${n}`, pp, rounded, 1e-6),
                p.check(`m n=${n}`, m, mr, 1e-6),
                p.check(`v n=${n}`, v, vr, 1e-6),
              );
              continue;
            }
            x.adamw(mw, null, g, m, v, opt);
            ref.adamw(mwr, null, gr, mr, vr, opt);
            checks.push(
              p.check(`param n=${n}`, mw, mwr, 1e-6),
              p.check(`m n=${n}`, m, mr, 1e-6),
              p.check(`v n=${n}`, v, vr, 1e-6),
            );
          }
          return checks;
        }),
    },
    {
      name: "sumSquares, sum, cast, scale, copy, fill",
      run: (x, ref, dtype, seed) =>
        withPair(x, ref, dtype, (p) => {
          const r = rng(seed);
          const [a, ar] = p.both(randn(r, 300_001), [300_001]);
          const [b, br] = p.both(randn(r, 1000), [10, 100], "f32");
          const ss = x.sumSquares([a, b]);
          const ssr = ref.sumSquares([ar, br]);
          const repeat = x.sumSquares([a, b]);
          const s1 = x.sum(a);
          const s1r = ref.sum(ar);
          const [c, cr] = p.out([1000], dtype === "bf16" ? "bf16" : "f32");
          x.cast(c, b);
          ref.copy(cr, br);
          if (dtype === "bf16")
            ref.copy(cr, p.rs.from(br.toFloat32().map(roundBf16), [1000], "f32"));
          x.scale(c, 3);
          ref.scale(cr, 3);
          if (dtype === "bf16")
            ref.copy(cr, p.rs.from(cr.toFloat32().map(roundBf16), [1000], "f32"));
          const [d] = p.out([1000], c.dtype);
          x.copy(d, c);
          const [f] = p.out([77], dtype);
          x.fill(f, 1.5);
          const fr = p.rs.from(new Float32Array(77).fill(1.5), [77], "f32");
          return [
            { name: "sumSquares", err: Math.abs(ss - ssr) / ssr, tol: 1e-6 },
            { name: "sumSquares repeatable", err: ss === repeat ? 0 : 1, tol: 0 },
            { name: "sum", err: Math.abs(s1 - s1r) / Math.max(Math.abs(s1r), 1), tol: 1e-6 },
            p.check("cast+scale", c, cr, 1e-6),
            p.check("copy", d, cr, 1e-6),
            p.check("fill", f, fr, 0),
          ];
        }),
    },
  ];
}
