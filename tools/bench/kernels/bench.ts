/**
 * Kernel benchmark at the TinyLlama 1.1B shapes (micro-batch 8 x 2048, hidden 2048,
 * intermediate 5632, 32/4 heads of 64, vocab 32000) on the CUDA backend, bf16 activations.
 * Prints per-op time, TFLOP/s or GB/s, and writes JSON for torch_bench.py, which times
 * PyTorch on the same card in the same run and prints the ratio table. With --dump DIR it
 * also writes inputs/outputs of every op at batch 1 for the PyTorch correctness comparison.
 * Usage (GPU machine): node kernels-bench.mjs --out results.json [--dump DIR]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadBackend } from "../../../packages/kernels/src/loader.js";
import type { Tensor } from "../../../packages/kernels/src/tensor.js";
import { randInts, randn, rng } from "../../../packages/kernels/src/testing/util.js";
import type { Backend, DType } from "../../../packages/kernels/src/types.js";

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const outFile = arg("--out") ?? "kernels-bench.json";
const dumpDir = arg("--dump");
// --only a|b: time only the ops whose names contain one of the |-separated parts
const only = arg("--only")?.split("|");

// --small --backend cpu: a dry run of this script on a machine without a GPU (tiny shapes).
const small = process.argv.includes("--small");
const k: Backend = await loadBackend((arg("--backend") ?? "cuda") as "cuda" | "cpu");
const cpu: Backend = await loadBackend("cpu");
const [B, T, C, I, H, Hkv, D, V] = small
  ? [1, 64, 128, 256, 4, 2, 64, 500]
  : [8, 2048, 2048, 5632, 32, 4, 64, 32000];
const N = B * T;
const live: Tensor[] = [];
const r = rng(2024);

/** Random (never zero) device tensor; large ones are tiled from a 4M-element random block. */
function rand(shape: number[], dtype: DType, std = 1): Tensor {
  const t = k.empty(shape, dtype);
  live.push(t);
  const block = randn(r, Math.min(t.numel, 1 << 22), std);
  const flat = t.reshape([t.numel]);
  for (let off = 0; off < t.numel; off += block.length) {
    const n = Math.min(block.length, t.numel - off);
    flat.view(off, [n]).copyFromHost(n === block.length ? block : block.subarray(0, n));
  }
  return t;
}
function empty(shape: number[], dtype: DType): Tensor {
  const t = k.empty(shape, dtype);
  live.push(t);
  return t;
}
function freeAll() {
  for (const t of live.splice(0)) t.dispose();
}

interface Row {
  op: string;
  ms: number;
  flops?: number;
  bytes?: number;
  tflops?: number;
  gbps?: number;
}
const rows: Row[] = [];

function time(fn: () => void, iters: number): number {
  fn();
  k.synchronize();
  const samples: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) fn();
    k.synchronize();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6 / iters);
  }
  samples.sort((a, b) => a - b);
  return samples[1]!;
}

function bench(op: string, fn: () => void, work: { flops?: number; bytes?: number }, iters = 10) {
  if (only && !only.some((part) => op.includes(part))) return;
  const ms = time(fn, iters);
  const row: Row = { op, ms, ...work };
  if (work.flops) row.tflops = work.flops / (ms * 1e-3) / 1e12;
  if (work.bytes) row.gbps = work.bytes / (ms * 1e-3) / 1e9;
  rows.push(row);
  const rate = row.tflops
    ? `${row.tflops.toFixed(1)} TFLOP/s`
    : row.gbps
      ? `${row.gbps.toFixed(0)} GB/s`
      : "";
  console.log(`${op.padEnd(34)} ${ms.toFixed(3).padStart(9)} ms  ${rate}`);
}

// TINYLLAMA_ATTENTION (cudnn | mma | wmma | fp32; unset: cuDNN's forward and backward where
// built) picks the CUDA attention kernels; recorded in the JSON.
const attentionKernel = process.env.TINYLLAMA_ATTENTION || "default";
console.log(`device: ${k.device.name}; ${k.device.detail}; attention kernel: ${attentionKernel}`);

// ---- copy bandwidth (the ceiling for memory-bound ops)
{
  const n = small ? 1 << 20 : 1 << 29;
  const src = rand([n], "bf16");
  const dst = empty([n], "bf16");
  bench("copy 1 GiB (d2d)", () => k.copy(dst, src), { bytes: 2 * 2 * n });
  freeAll();
}
// and a copy of the bytes the residual + RMSNorm forward moves (N x C in twice, out twice): the
// ceiling at that op's size, where the launch's ramp and tail weigh more than in 1 GiB
{
  const n = 2 * N * C;
  const src = rand([n], "bf16");
  const dst = empty([n], "bf16");
  bench(`copy ${(2 * n) / 2 ** 20} MiB (d2d)`, () => k.copy(dst, src), { bytes: 2 * 2 * n });
  freeAll();
}

// ---- matmuls: forward y = x W^T, dgrad dx = dy W, wgrad dW(f32) += dy^T x
// "qkv" and "mlp gate+up" are the fused shapes; the trainer runs q, k, v (and gate, up) as
// separate matmuls, so the k/v shape (N = Hkv * D = 256 at 1.1B) is timed on its own too.
const linears: Array<[string, number, number]> = [
  ["qkv", C, C + 2 * Hkv * D],
  ["k or v proj", C, Hkv * D],
  ["attn out", C, C],
  ["mlp gate+up", C, 2 * I],
  ["mlp down", I, C],
  ["lm head", C, V],
];
for (const [name, inF, outF] of linears) {
  const x = rand([N, inF], "bf16");
  const w = rand([outF, inF], "bf16", 0.02);
  const y = empty([N, outF], "bf16");
  const dy = rand([N, outF], "bf16");
  const dx = empty([N, inF], "bf16");
  const dw = rand([outF, inF], "f32", 0.01);
  const flops = 2 * N * inF * outF;
  bench(`matmul ${name} fwd`, () => k.matmul(y, x, w, { transB: true }), { flops });
  bench(`matmul ${name} dgrad`, () => k.matmul(dx, dy, w), { flops });
  bench(
    `matmul ${name} wgrad (f32 +=)`,
    () => k.matmul(dw, dy, x, { transA: true, accumulate: true }),
    { flops },
  );
  freeAll();
}

// ---- attention
{
  const q = rand([B, T, H, D], "bf16");
  const kk = rand([B, T, Hkv, D], "bf16");
  const v = rand([B, T, Hkv, D], "bf16");
  const out = empty([B, T, H, D], "bf16");
  const lse = empty([B, H, T], "f32");
  const dO = rand([B, T, H, D], "bf16");
  const [dq, dk, dv] = [
    empty([B, T, H, D], "bf16"),
    empty([B, T, Hkv, D], "bf16"),
    empty([B, T, Hkv, D], "bf16"),
  ];
  const fwdFlops = (4 * B * H * T * T * D) / 2;
  bench(
    "attention fwd (causal GQA)",
    () => k.attentionForward(out, lse, q, kk, v, { causal: true }),
    { flops: fwdFlops },
    3,
  );
  bench(
    "attention bwd",
    () => k.attentionBackward(dq, dk, dv, dO, q, kk, v, out, lse, { causal: true }),
    { flops: 2.5 * fwdFlops },
    2,
  );
  bench("rope fwd (q, in place)", () => k.ropeForward(q, q, { base: 10000 }), {
    bytes: 2 * N * H * D * 2,
  });
  freeAll();
}

// ---- norms, swiglu
{
  const x = rand([N, C], "bf16");
  const res = rand([N, C], "bf16");
  const w = rand([C], "bf16");
  const ro = empty([N, C], "bf16");
  const out = empty([N, C], "bf16");
  const rstd = empty([N], "f32");
  bench("residual + rmsnorm fwd", () => k.residualRmsnormForward(ro, out, rstd, x, res, w, 1e-5), {
    bytes: 4 * N * C * 2,
  });
  const dOut = rand([N, C], "bf16");
  const dx = rand([N, C], "bf16");
  const dw = rand([C], "f32");
  bench("rmsnorm bwd (dx +=, dW +=)", () => k.rmsnormBackward(dx, dw, dOut, ro, w, rstd), {
    bytes: 4 * N * C * 2,
  });
  freeAll();
  const g = rand([N, I], "bf16");
  const u = rand([N, I], "bf16");
  const h = empty([N, I], "bf16");
  bench("swiglu fwd", () => k.swigluForward(h, g, u), { bytes: 3 * N * I * 2 });
  const dh = rand([N, I], "bf16");
  const [dg, du] = [empty([N, I], "bf16"), empty([N, I], "bf16")];
  bench("swiglu bwd", () => k.swigluBackward(dg, du, dh, g, u), { bytes: 5 * N * I * 2 });
  freeAll();
}

// ---- cross-entropy over bf16 logits, gradient written in place
{
  const logits = rand([N, V], "bf16", 2);
  const targets = empty([N], "i32");
  targets.copyFromHost(randInts(r, N, V));
  const losses = empty([N], "f32");
  const keep = rand([N, V], "bf16", 2);
  bench(
    "cross-entropy fwd+grad (in place)",
    () => {
      k.crossEntropy(losses, logits, targets, { computeGrad: true, dlossScale: 1 / N });
    },
    { bytes: 2 * N * V * 2 },
  );
  void keep;
  const predictions = empty([N], "i32");
  bench("argmax over rows (greedy tokens)", () => k.argmax(predictions, keep), {
    bytes: N * V * 2,
  });
  freeAll();
}

// ---- embedding
{
  const table = rand([V, C], "bf16");
  const ids = empty([N], "i32");
  ids.copyFromHost(randInts(r, N, V));
  const out = empty([N, C], "bf16");
  bench("embedding fwd", () => k.embeddingForward(out, table, ids), { bytes: 2 * N * C * 2 });
  const dTable = rand([V, C], "f32", 0.01);
  const dOut = rand([N, C], "bf16");
  bench("embedding bwd (deterministic)", () => k.embeddingBackward(dTable, dOut, ids), {
    bytes: N * C * (2 + 8),
  });
  // Token frequencies of real text are Zipf-like (the most frequent id ~9% of positions at
  // V = 32000): long runs of one id in the sorted order, which uniform ids never produce.
  const zipf = new Int32Array(N);
  const cdf = new Float64Array(V);
  for (let i = 0, acc = 0; i < V; i++) cdf[i] = acc += 1 / (i + 1);
  for (let n = 0; n < N; n++) {
    const u = r() * (cdf[V - 1] ?? 1);
    let lo = 0;
    let hi = V - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cdf[mid] ?? 0) < u) lo = mid + 1;
      else hi = mid;
    }
    zipf[n] = lo;
  }
  ids.copyFromHost(zipf);
  bench("embedding bwd (Zipf ids, as in text)", () => k.embeddingBackward(dTable, dOut, ids), {
    bytes: N * C * (2 + 8),
  });
  freeAll();
}

// ---- optimizer over 1.1B parameters
{
  const P = small ? 1 << 20 : 1_100_048_384;
  const param = empty([P], "bf16");
  const master = empty([P], "f32");
  const grad = empty([P], "f32");
  const m = empty([P], "f32");
  const v = empty([P], "f32");
  k.fill(master, 0.02);
  k.fill(grad, 0.001);
  k.fill(m, 0.0001);
  k.fill(v, 1e-6);
  const opt = {
    lr: 4e-4,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.1,
    step: 10,
    gradScale: 1,
  };
  bench(
    "adamw 1.1B (bf16 param + f32 master)",
    () => k.adamw(param, master, grad, m, v, opt),
    { bytes: 30 * P },
    3,
  );
  bench("sumSquares 1.1B f32 grads", () => void k.sumSquares([grad]), { bytes: 4 * P }, 3);
  freeAll();
}

// ---- Node-API launch overhead per call
const overhead: Record<string, number> = {};
{
  const tiny = k.empty([1], "f32");
  k.fill(tiny, 1);
  const n = small ? 200 : 20000;
  k.synchronize();
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) k.scale(tiny, 1);
  const enqueue = Number(process.hrtime.bigint() - t0) / 1e3 / n;
  k.synchronize();
  overhead["cuda scale(1 elem): host time per call (us)"] = enqueue;
  const c = cpu.empty([1], "f32");
  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) cpu.scale(c, 1);
  overhead["cpu scale(1 elem): per call (us), N-API + arg checks"] =
    Number(process.hrtime.bigint() - t0) / 1e3 / n;
  const x = k.empty([4, 4], "bf16");
  const y = k.empty([4, 4], "bf16");
  t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) k.matmul(y, x, x, { transB: true });
  k.synchronize();
  overhead["cuda matmul 4x4: per call (us), cached cuBLASLt plan"] =
    Number(process.hrtime.bigint() - t0) / 1e3 / n;
  for (const t of [tiny, c, x, y]) t.dispose();
  for (const [name, us] of Object.entries(overhead))
    console.log(`${name.padEnd(58)} ${us.toFixed(2)}`);
}

writeFileSync(
  outFile,
  JSON.stringify(
    { device: k.device, attentionKernel, shapes: { B, T, C, I, H, Hkv, D, V }, rows, overhead },
    null,
    2,
  ),
);
console.log(`wrote ${outFile}`);

if (dumpDir) dumpForTorch(dumpDir);

/**
 * Writes each op's inputs and outputs (batch 1, TinyLlama widths) as raw little-endian files
 * plus manifest.json; torch_bench.py recomputes them in fp32 with PyTorch and compares.
 */
function dumpForTorch(dir: string) {
  mkdirSync(dir, { recursive: true });
  const manifest: Array<{
    op: string;
    params: Record<string, number>;
    tensors: Record<string, { file: string; shape: readonly number[]; dtype: DType }>;
  }> = [];
  const save = (op: string, params: Record<string, number>, tensors: Record<string, Tensor>) => {
    k.synchronize();
    const entry: (typeof manifest)[number] = { op, params, tensors: {} };
    for (const [name, t] of Object.entries(tensors)) {
      const file = `${op}.${name}.bin`;
      const host = t.dtype === "bf16" ? t.toHost(new Uint16Array(t.numel)) : t.toHost();
      writeFileSync(join(dir, file), new Uint8Array(host.buffer, host.byteOffset, host.byteLength));
      entry.tensors[name] = { file, shape: t.shape, dtype: t.dtype };
    }
    manifest.push(entry);
  };
  const poisoned = (shape: number[], dtype: DType) => {
    const t = empty(shape, dtype);
    t.copyFromHost(new Float32Array(t.numel).fill(Number.NaN));
    return t;
  };
  const Nq = T; // batch 1
  {
    const x = rand([Nq, C], "bf16");
    const w = rand([I, C], "bf16", 0.02);
    const y = poisoned([Nq, I], "bf16");
    k.matmul(y, x, w, { transB: true });
    const dy = rand([Nq, I], "bf16");
    const dw0 = rand([I, C], "f32", 0.01);
    const dw0Copy = empty([I, C], "f32");
    k.copy(dw0Copy, dw0);
    k.matmul(dw0, dy, x, { transA: true, accumulate: true });
    save("linear", {}, { x, w, y, dy, dw0: dw0Copy, dw: dw0 });
    freeAll();
  }
  {
    const x = rand([Nq, C], "bf16");
    const res = rand([Nq, C], "bf16");
    const w = rand([C], "bf16", 0.3);
    const [ro, out, rstd] = [
      poisoned([Nq, C], "bf16"),
      poisoned([Nq, C], "bf16"),
      poisoned([Nq], "f32"),
    ];
    k.residualRmsnormForward(ro, out, rstd, x, res, w, 1e-5);
    const dOut = rand([Nq, C], "bf16");
    const dx = rand([Nq, C], "f32");
    const dx0 = empty([Nq, C], "f32");
    k.copy(dx0, dx);
    const dw = rand([C], "f32");
    const dw0 = empty([C], "f32");
    k.copy(dw0, dw);
    k.rmsnormBackward(dx, dw, dOut, ro, w, rstd);
    save("rmsnorm", { eps: 1e-5 }, { x, res, w, ro, out, rstd, dOut, dx0, dx, dw0, dw });
    freeAll();
  }
  {
    const q = rand([1, T, H, D], "bf16");
    const out = poisoned([1, T, H, D], "bf16");
    k.ropeForward(out, q, { base: 10000 });
    const back = poisoned([1, T, H, D], "bf16");
    k.ropeBackward(back, out, { base: 10000 });
    save("rope", { base: 10000 }, { q, out, back });
    freeAll();
  }
  {
    const q = rand([1, T, H, D], "bf16");
    const kk = rand([1, T, Hkv, D], "bf16");
    const v = rand([1, T, Hkv, D], "bf16");
    const out = poisoned([1, T, H, D], "bf16");
    const lse = poisoned([1, H, T], "f32");
    k.attentionForward(out, lse, q, kk, v, { causal: true });
    const dO = rand([1, T, H, D], "bf16");
    const [dq, dk, dv] = [
      poisoned([1, T, H, D], "bf16"),
      poisoned([1, T, Hkv, D], "bf16"),
      poisoned([1, T, Hkv, D], "bf16"),
    ];
    k.attentionBackward(dq, dk, dv, dO, q, kk, v, out, lse, { causal: true });
    save("attention", {}, { q, k: kk, v, out, lse, dO, dq, dk, dv });
    freeAll();
  }
  {
    const g = rand([Nq, I], "bf16", 2);
    const u = rand([Nq, I], "bf16");
    const out = poisoned([Nq, I], "bf16");
    k.swigluForward(out, g, u);
    const dOut = rand([Nq, I], "bf16");
    const [dg, du] = [poisoned([Nq, I], "bf16"), poisoned([Nq, I], "bf16")];
    k.swigluBackward(dg, du, dOut, g, u);
    save("swiglu", {}, { g, u, out, dOut, dg, du });
    freeAll();
  }
  {
    const logits = rand([Nq, V], "bf16", 2);
    const input = empty([Nq, V], "bf16");
    k.copy(input, logits);
    const targets = empty([Nq], "i32");
    targets.copyFromHost(randInts(r, Nq, V));
    const losses = poisoned([Nq], "f32");
    k.crossEntropy(losses, logits, targets, { computeGrad: true, dlossScale: 1 / Nq });
    save(
      "cross_entropy",
      { dlossScale: 1 / Nq },
      { logits: input, targets, losses, dlogits: logits },
    );
    freeAll();
  }
  {
    const table = rand([V, C], "bf16");
    const ids = empty([Nq], "i32");
    const idv = randInts(r, Nq, 300); // repeats exercise the deterministic scatter-add
    ids.copyFromHost(idv);
    const out = poisoned([Nq, C], "bf16");
    k.embeddingForward(out, table, ids);
    const dOut = rand([Nq, C], "bf16");
    const dTable = empty([V, C], "f32");
    k.fill(dTable, 0);
    k.embeddingBackward(dTable, dOut, ids);
    save("embedding", {}, { table, ids, out, dOut, dTable });
    freeAll();
  }
  {
    const n = small ? 1 << 12 : 1 << 20;
    const master = rand([n], "f32");
    const master0 = empty([n], "f32");
    k.copy(master0, master);
    const grad = rand([n], "f32");
    const m = rand([n], "f32", 0.01);
    const m0 = empty([n], "f32");
    k.copy(m0, m);
    const v = rand([n], "f32", 0.01);
    k.scale(v, 0.1);
    const vAbs = empty([n], "f32");
    // v must be >= 0: v = (0.1 * randn)^2 computed on the host
    const vh = v.toFloat32().map((a) => a * a);
    vAbs.copyFromHost(vh);
    const v0 = empty([n], "f32");
    k.copy(v0, vAbs);
    const param = poisoned([n], "bf16");
    const opt = {
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      step: 7,
      gradScale: 0.5,
    };
    k.adamw(param, master, grad, m, vAbs, opt);
    save("adamw", opt, { master0, grad, m0, v0, master, m, v: vAbs, param });
    freeAll();
  }
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest, null, 1));
  console.log(`dumped ${manifest.length} ops to ${dir}`);
}
