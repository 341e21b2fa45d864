import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadBackend } from "../loader.js";
import { matmulRef, roundBf16 } from "../reference.js";
import { randn, relErr, rng, Scope } from "../testing/util.js";
import type { Backend } from "../types.js";

let k: Backend;
let s: Scope;
beforeAll(async () => {
  k = await loadBackend("cpu");
  s = new Scope(k);
});
afterEach(() => s.dispose());

describe("cpu matmul", () => {
  const shapes = [
    [1, 1, 1],
    [7, 5, 3],
    [37, 29, 300], // K crosses the 256 block, M/N cross the 6/16 micro-tile edges
    [100, 130, 17],
  ] as const;
  for (const [M, N, K] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        it(`[${M}x${K}]@[${K}x${N}] transA=${transA} transB=${transB}`, () => {
          const r = rng(M * 1000 + N * 10 + K + (transA ? 1 : 0) + (transB ? 2 : 0));
          const a = randn(r, M * K);
          const b = randn(r, K * N);
          const aShape = transA ? [K, M] : [M, K];
          const bShape = transB ? [N, K] : [K, N];
          const out = s.poisoned([M, N], "f32");
          k.matmul(out, s.from(a, aShape, "f32"), s.from(b, bShape, "f32"), { transA, transB });
          expect(relErr(out.toFloat32(), matmulRef(a, b, M, N, K, transA, transB))).toBeLessThan(
            1e-5,
          );
        });
      }
    }
  }

  it("accumulates with alpha into an existing output (dW += dY^T X)", () => {
    const r = rng(7);
    const [M, N, K] = [12, 9, 33];
    const a = randn(r, K * M);
    const b = randn(r, K * N);
    const c0 = randn(r, M * N);
    const out = s.from(c0, [M, N], "f32");
    k.matmul(out, s.from(a, [K, M], "f32"), s.from(b, [K, N], "f32"), {
      transA: true,
      accumulate: true,
      alpha: 0.5,
    });
    const ref = matmulRef(a, b, M, N, K, true, false).map((v, i) => c0[i]! + 0.5 * v);
    expect(relErr(out.toFloat32(), ref)).toBeLessThan(1e-5);
  });

  it("flattens leading dims: y[B,T,O] = x[B,T,C] W^T", () => {
    const r = rng(8);
    const x = randn(r, 2 * 3 * 8);
    const w = randn(r, 5 * 8);
    const y = s.poisoned([2, 3, 5], "f32");
    k.matmul(y, s.from(x, [2, 3, 8], "f32"), s.from(w, [5, 8], "f32"), { transB: true });
    expect(relErr(y.toFloat32(), matmulRef(x, w, 6, 5, 8, false, true))).toBeLessThan(1e-5);
  });

  it("takes bf16 inputs and writes a bf16 output rounded once", () => {
    const r = rng(9);
    const [M, N, K] = [20, 24, 40];
    const a = randn(r, M * K).map(roundBf16);
    const b = randn(r, K * N).map(roundBf16);
    const out = s.poisoned([M, N], "bf16");
    k.matmul(out, s.from(a, [M, K], "bf16"), s.from(b, [K, N], "bf16"));
    const ref = matmulRef(a, b, M, N, K);
    const got = out.toFloat32();
    expect(relErr(got, ref)).toBeLessThan(4e-3);
    // every element is the bf16 rounding of the f32 result (single rounding, no bf16 partial sums)
    let mismatches = 0;
    for (let i = 0; i < got.length; i++)
      if (Math.abs(got[i]! - roundBf16(ref[i]!)) > Math.abs(ref[i]!) * 8e-3) mismatches++;
    expect(mismatches).toBe(0);
  });

  it("rejects mismatched shapes, dtypes and aliasing with a named error", () => {
    const a = s.zeros([4, 3], "f32");
    const b = s.zeros([5, 3], "f32");
    expect(() => k.matmul(s.zeros([4, 5], "f32"), a, b)).toThrow(/inner dimensions differ/);
    expect(() => k.matmul(s.zeros([4, 4], "f32"), a, b, { transB: true })).toThrow(
      /out \[4,4\] must be \[4,5\]/,
    );
    expect(() =>
      k.matmul(s.zeros([4, 5], "f32"), a, s.zeros([5, 3], "bf16"), { transB: true }),
    ).toThrow(/same dtype/);
    expect(() => k.matmul(a, a, s.zeros([3, 3], "f32"))).toThrow(/must not overlap/);
  });
});

describe("cpu matmul micro-kernels", () => {
  // The AVX2+FMA kernel (used where the CPU has it) and the portable one must agree; the
  // portable one is forced in a child process, since the choice is made once per process.
  const dist = fileURLToPath(new URL("../../dist/index.js", import.meta.url));
  const inChild = (env: Record<string, string>, body: string): string =>
    execFileSync(
      process.execPath,
      ["--input-type=module", "-e", `const m = await import(${JSON.stringify(dist)}); ${body}`],
      { encoding: "utf8", env: { ...process.env, ...env } },
    );
  const cases = [
    [37, 29, 300, false, true],
    [100, 130, 17, true, false],
    [7, 5, 3, true, true],
    [2, 29, 300, false, true], // the decoding path where AVX2 is present
  ] as const;

  it("TINYLLAMA_CPU_KERNELS=generic gives what the default kernels give (matmul, cross-entropy)", () => {
    const script = `const k = await m.loadBackend("cpu");
      const out = [k.device.detail];
      for (const [M, N, K, tA, tB] of ${JSON.stringify(cases)}) {
        let x = 1; const rnd = (n) => Float32Array.from({ length: n }, () => ((x = (x * 48271) % 2147483647) / 2147483647) - 0.5);
        const a = k.fromHost(rnd(M * K), tA ? [K, M] : [M, K], "f32");
        const b = k.fromHost(rnd(K * N), tB ? [N, K] : [K, N], "f32");
        const o = k.empty([M, N], "f32");
        k.matmul(o, a, b, { transA: tA, transB: tB });
        out.push(Array.from(o.toHost()));
      }
      // Cross-entropy (softmax exp kernel): losses and the gradient written in place.
      let y = 7; const r2 = (n) => Float32Array.from({ length: n }, () => ((y = (y * 48271) % 2147483647) / 2147483647) * 8 - 4);
      const logits = k.fromHost(r2(5 * 1003), [5, 1003], "f32");
      const losses = k.empty([5], "f32");
      k.crossEntropy(losses, logits, k.fromHost(Int32Array.from([0, 17, 1002, 500, 3]), [5], "i32"), { computeGrad: true, dlossScale: 0.2 });
      out.push(Array.from(losses.toHost()), Array.from(logits.toHost()));
      console.log(JSON.stringify(out));`;
    const [genericDetail, ...generic] = JSON.parse(
      inChild({ TINYLLAMA_CPU_KERNELS: "generic" }, script),
    );
    const [defaultDetail, ...auto] = JSON.parse(inChild({}, script));
    expect(genericDetail).toMatch(/generic kernels/);
    expect(defaultDetail).toMatch(/(avx2\+fma|generic) kernels/);
    for (const [i, g] of (generic as number[][]).entries()) {
      expect(relErr(Float32Array.from(auto[i] as number[]), Float64Array.from(g))).toBeLessThan(
        1e-6,
      );
    }
  });

  it("decoding shapes (1-4 rows x W^T) give the bits of the same rows in a larger matmul", () => {
    // M <= 4 with transB takes the register-transposing decode path where AVX2 is present; it
    // must keep the blocked path's per-element order, so KV-cache decoding stays bit-identical.
    const r = rng(11);
    for (const dtype of ["f32", "bf16"] as const) {
      for (const [N, K] of [
        [37, 300],
        [13, 7],
        [130, 520],
        [8, 8],
      ] as const) {
        const A = randn(r, 7 * K);
        const w = s.from(randn(r, N * K), [N, K], dtype);
        const big = s.poisoned([7, N], "f32");
        k.matmul(big, s.from(A, [7, K], dtype), w, { transB: true });
        const want = big.toFloat32();
        for (const M of [1, 2, 3, 4]) {
          const out = s.from(randn(r, M * N), [M, N], "f32");
          const before = out.toFloat32();
          k.matmul(out, s.from(A.subarray(0, M * K), [M, K], dtype), w, {
            transB: true,
            accumulate: true,
            alpha: 0.5,
          });
          const got = out.toFloat32();
          for (let i = 0; i < M * N; i++)
            expect(got[i]).toBe(Math.fround(Math.fround(0.5 * want[i]!) + before[i]!));
        }
      }
    }
  });

  it("a bad TINYLLAMA_CPU_KERNELS fails matmul with an error naming it", () => {
    const out = inChild(
      { TINYLLAMA_CPU_KERNELS: "sse9" },
      `const k = await m.loadBackend("cpu"); const a = k.zeros([2, 2], "f32");
       try { k.matmul(k.empty([2, 2], "f32"), a, a); console.log("no error"); } catch (e) { console.log(e.message); }`,
    );
    expect(out).toMatch(/TINYLLAMA_CPU_KERNELS must be auto or generic, got "sse9"/);
  });
});
