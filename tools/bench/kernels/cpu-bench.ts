/**
 * CPU backend benchmark (any machine): matmul GFLOP/s at the shapes a small model trains with
 * on CPU, and the per-call Node-API cost. Usage: bundle with esbuild, then
 * `node cpu-bench.mjs` (TINYLLAMA_CPU_THREADS sets the thread count).
 */
import { loadBackend } from "../../../packages/kernels/src/loader.js";
import { randn, rng } from "../../../packages/kernels/src/testing/util.js";

const k = await loadBackend("cpu");
console.log(`cpu backend: ${k.device.detail}`);
const r = rng(1);
const shapes: Array<[string, number, number, number, boolean, boolean]> = [
  ["512^3", 512, 512, 512, false, false],
  ["x W^T  [2048x512]x[1536x512]^T", 2048, 1536, 512, false, true],
  ["dW += dY^T X [512x2048]^T[2048x512]", 512, 512, 2048, true, false],
  ["lm head [2048x512]x[32000x512]^T", 2048, 32000, 512, false, true],
];
for (const [name, M, N, K, transA, transB] of shapes) {
  const a = k.fromHost(randn(r, M * K), transA ? [K, M] : [M, K], "f32");
  const b = k.fromHost(randn(r, K * N), transB ? [N, K] : [K, N], "f32");
  const out = k.empty([M, N], "f32");
  k.matmul(out, a, b, { transA, transB });
  const iters = Math.max(1, Math.round(2e9 / (2 * M * N * K)));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) k.matmul(out, a, b, { transA, transB, accumulate: transA });
  const s = Number(process.hrtime.bigint() - t0) / 1e9 / iters;
  console.log(
    `matmul ${name.padEnd(40)} ${(s * 1e3).toFixed(1).padStart(8)} ms ${((2 * M * N * K) / s / 1e9).toFixed(1).padStart(7)} GFLOP/s`,
  );
  for (const t of [a, b, out]) t.dispose();
}
const tiny = k.empty([1], "f32");
const n = 200_000;
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) k.scale(tiny, 1);
console.log(
  `Node-API call (scale of 1 element, argument checks included): ${(Number(process.hrtime.bigint() - t0) / 1e3 / n).toFixed(2)} us`,
);
tiny.dispose();
