// CPU results must not depend on TINYLLAMA_CPU_THREADS: every parallel loop cuts its work into
// chunks fixed by the shape and combines cross-chunk reductions in chunk order, so a run resumed
// on a machine with another core count continues bit for bit. The pool size is read once per
// process, so each count runs in a child.
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const dist = fileURLToPath(new URL("../dist/index.js", import.meta.url));

// Every op on seeded inputs with shapes that are not multiples of the matmul tiles (6x16
// micro-tile, 96x128 tasks, K blocks of 256) and large enough for several chunks of every
// parallel loop; prints a SHA-256 of all outputs, computed twice in the process.
const script = `
const { createHash } = await import("node:crypto");
const m = await import(${JSON.stringify(dist)});
const k = await m.loadBackend("cpu");
let x = 12345;
const rnd = (n) => Float32Array.from({ length: n }, () => ((x = (x * 48271) % 2147483647) / 2147483647) * 4 - 2);
const ints = (n, hi) => Int32Array.from({ length: n }, () => (x = (x * 48271) % 2147483647) % hi);
function pass() {
  x = 12345;
  const h = createHash("sha256"), live = [];
  const T = (d, s, dt) => { const t = k.fromHost(d, s, dt); live.push(t); return t; };
  const Z = (s, dt) => { const t = k.zeros(s, dt); live.push(t); return t; };
  const put = (t) => { const a = t.dtype === "bf16" ? t.toHost(new Uint16Array(t.numel)) : t.toHost(); h.update(Buffer.from(a.buffer, a.byteOffset, a.byteLength)); };
  for (const dt of ["f32", "bf16"]) {
    for (const [M, N, K] of [[3, 203, 513], [193, 257, 530]])
      for (const tA of [false, true]) for (const tB of [false, true]) {
        const o = T(rnd(M * N), [M, N], "f32");
        k.matmul(o, T(rnd(M * K), tA ? [K, M] : [M, K], dt), T(rnd(K * N), tB ? [N, K] : [K, N], dt), { transA: tA, transB: tB, accumulate: true, alpha: 0.5 });
        put(o);
      }
    const N = 300, C = 257, xx = T(rnd(N * C), [N, C], dt), w = T(rnd(C), [C], dt), out = Z([N, C], dt), rstd = Z([N], "f32");
    k.rmsnormForward(out, rstd, xx, w, 1e-5); put(out); put(rstd);
    const dx = T(rnd(N * C), [N, C], "f32"), dW = T(rnd(C), [C], "f32");
    k.rmsnormBackward(dx, dW, T(rnd(N * C), [N, C], dt), xx, w, rstd); put(dx); put(dW);
    const [B, S, H, G, D] = [2, 45, 6, 2, 24];
    const q = T(rnd(B * S * H * D), [B, S, H, D], dt), kk = T(rnd(B * S * G * D), [B, S, G, D], dt), v = T(rnd(B * S * G * D), [B, S, G, D], dt);
    const ao = Z([B, S, H, D], dt), lse = Z([B, H, S], "f32");
    k.attentionForward(ao, lse, q, kk, v, { causal: true }); put(ao); put(lse);
    const dq = Z([B, S, H, D], dt), dk = Z([B, S, G, D], dt), dv = Z([B, S, G, D], dt);
    k.attentionBackward(dq, dk, dv, T(rnd(B * S * H * D), [B, S, H, D], dt), q, kk, v, ao, lse, { causal: true }); put(dq); put(dk); put(dv);
    const ro = Z([B, S, H, D], dt); k.ropeForward(ro, q, { base: 10000, positionOffset: 3 }); put(ro);
    const n = 50001, g = T(rnd(n), [n], dt), u = T(rnd(n), [n], dt), so = Z([n], dt), dg = Z([n], dt), du = Z([n], dt);
    k.swigluForward(so, g, u); put(so); k.swigluBackward(dg, du, T(rnd(n), [n], dt), g, u); put(dg); put(du);
    const lg = T(rnd(300 * 517), [300, 517], dt), ls = Z([300], "f32");
    k.crossEntropy(ls, lg, T(ints(300, 517), [300], "i32"), { computeGrad: true, dlossScale: 1 / 300 }); put(ls); put(lg);
    const am = Z([300], "i32"); k.argmax(am, T(rnd(300 * 517), [300, 517], dt)); put(am);
    const ids = T(ints(5000, 1000), [5000], "i32"), dT = T(rnd(1000 * 33), [1000, 33], "f32");
    k.embeddingBackward(dT, T(rnd(5000 * 33), [5000, 33], dt), ids); put(dT);
    h.update(String([k.sum(T(rnd(300001), [300001], dt)), k.sumSquares([dT, lg])]));
  }
  const p = T(rnd(70001), [70001], "bf16"), master = T(rnd(70001), [70001], "f32"), m1 = Z([70001], "f32"), v1 = Z([70001], "f32");
  for (let step = 1; step <= 2; step++)
    k.adamw(p, master, T(rnd(70001), [70001], "f32"), m1, v1, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step, gradScale: 0.7 });
  put(p); put(master); put(m1); put(v1);
  for (const t of live) t.dispose();
  return h.digest("hex");
}
console.log(JSON.stringify([k.device.threads, pass(), pass()]));`;

const inChild = (threads: number): [number, string, string] =>
  JSON.parse(
    execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      env: { ...process.env, TINYLLAMA_CPU_THREADS: String(threads) },
    }),
  );

/** loadBackend("cpu") in a child with TINYLLAMA_CPU_THREADS = value (unset: undefined). */
const threadsOrError = (value: string | undefined): string => {
  const env = { ...process.env, TINYLLAMA_CPU_THREADS: value };
  if (value === undefined) delete env.TINYLLAMA_CPU_THREADS;
  const r = spawnSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const m = await import(${JSON.stringify(dist)});
try { console.log("threads " + (await m.loadBackend("cpu")).device.threads); }
catch (e) { console.log("error " + e.message); }`,
    ],
    { encoding: "utf8", env },
  );
  return r.stdout.trim();
};

describe("CPU results do not depend on the thread count", () => {
  it("every op gives the same bits with 1, 2, 3 and 7 threads, and twice in one process", () => {
    const runs = [1, 2, 3, 7].map(inChild);
    for (const [i, [threads, first, second]] of runs.entries()) {
      expect(threads).toBe([1, 2, 3, 7][i]);
      expect(second, `threads=${threads}: second pass`).toBe(first);
      expect(first, `threads=${threads} against 1 thread`).toBe(runs[0]![1]);
    }
  });

  it("refuses a TINYLLAMA_CPU_THREADS that is not 1..256 (it silently meant one thread); empty means every core", () => {
    for (const bad of ["abc", "0", "-3", "300", "2x", "1.5"])
      expect(threadsOrError(bad)).toBe(
        `error @tinyllama/kernels: the cpu backend cannot start: init: TINYLLAMA_CPU_THREADS must be a whole number from 1 to 256 (or unset for every core), got "${bad}"`,
      );
    expect(threadsOrError("3")).toBe("threads 3");
    expect(threadsOrError("")).toBe(threadsOrError(undefined));
  });
});
