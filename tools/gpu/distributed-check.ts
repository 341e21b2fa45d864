/**
 * GPU-side check of the NCCL collectives (bundled into .gpu/distributed-check.mjs by
 * tools/gpu/prepare.sh; run by tools/gpu/run-distributed.sh). `--nproc N` starts N ranks of
 * itself (one GPU each, RANK/WORLD_SIZE/MASTER_* as torchrun sets them); each rank:
 *   1. correctness: all-reduce (sum, avg), reduce-scatter and all-gather (separate and in
 *      place), broadcast, f32 and bf16, against a float64 reference of the same inputs
 *      (f32 within 1e-5 relative, bf16 within 2^-6 relative: NCCL's order is its own);
 *   2. groups: split into two "nodes" (the hybrid sharding groups) and reduce in each;
 *   3. bandwidth: bus GB/s (NCCL's convention) of all-reduce, reduce-scatter and all-gather at
 *      1 to 1024 MiB, bf16 and f32;
 *   4. failure (`--kill`): the last rank exits abruptly while the others are in a collective;
 *      they must fail with a message naming it within the bound (default 60 s).
 * Prints one table (rank 0) and exits non-zero on any failure.
 */
import { spawn } from "node:child_process";
import { NcclWorld, ncclAvailability } from "../../packages/kernels/src/collectives/nccl.js";
import { TcpWorld } from "../../packages/kernels/src/collectives/tcp.js";
import type { Communicator } from "../../packages/kernels/src/collectives/types.js";
import { loadBackend } from "../../packages/kernels/src/loader.js";
import type { Backend } from "../../packages/kernels/src/types.js";

const argv = process.argv.slice(2);
const flag = (n: string) => argv.includes(`--${n}`);
const value = (n: string, d: string) => {
  const i = argv.indexOf(`--${n}`);
  return i === -1 ? d : argv[i + 1]!;
};

if (process.env.RANK === undefined) {
  // Launcher: one process per GPU.
  const n = Number(value("nproc", "2"));
  const port = 29500 + Math.floor(Math.random() * 2000);
  const avail = ncclAvailability();
  if (flag("dry-run"))
    console.log("dry run: cpu backend, TCP transport (checks this script, not NCCL)");
  else if (!avail.available) {
    console.error(`NCCL not built: ${avail.reason}`);
    process.exit(2);
  }
  console.log(`NCCL ${avail.version ?? "-"}, ${n} ranks, rendezvous 127.0.0.1:${port}`);
  const children = Array.from({ length: n }, (_, r) =>
    spawn(process.execPath, [process.argv[1]!, ...argv], {
      env: {
        ...process.env,
        RANK: String(r),
        WORLD_SIZE: String(n),
        LOCAL_RANK: String(r),
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: String(port),
        TINYLLAMA_CUDA_DEVICE: String(r),
        NCCL_NVLS_ENABLE: process.env.NCCL_NVLS_ENABLE ?? "0",
      },
      stdio: "inherit",
    }),
  );
  const codes = await Promise.all(
    children.map((c) => new Promise<number>((r) => c.on("exit", (code) => r(code ?? 1)))),
  );
  const expectKill = flag("kill");
  // With --kill the last rank exits with 3 on purpose and the others must fail (1).
  const ok = expectKill
    ? codes.slice(0, -1).every((c) => c === 1) && codes.at(-1) === 3
    : codes.every((c) => c === 0);
  console.log(`exit codes ${codes.join(", ")}: ${ok ? "PASS" : "FAIL"}`);
  process.exit(ok ? 0 : 1);
}

const rank = Number(process.env.RANK);
const W = Number(process.env.WORLD_SIZE);
const dry = flag("dry-run");
const k: Backend = await loadBackend(dry ? "cpu" : "cuda");
const t0 = Date.now();
const worldOpts = {
  rank,
  worldSize: W,
  masterAddr: process.env.MASTER_ADDR!,
  masterPort: Number(process.env.MASTER_PORT),
  timeoutMs: Number(value("timeout", "60")) * 1000,
};
const world = dry ? await TcpWorld.connect(worldOpts) : await NcclWorld.connect(k, worldOpts);
const comm: Communicator = world instanceof TcpWorld ? world.communicator() : world.comm;
const shutdown = async () => {
  if (world instanceof TcpWorld) {
    await comm.flush();
    world.beginShutdown();
    await comm.barrier();
    world.close();
  } else await world.shutdown();
};
const rows: string[] = [];
let failures = 0;
const check = (name: string, err: number, tol: number) => {
  const ok = err <= tol;
  if (!ok) failures++;
  rows.push(
    `${ok ? "PASS" : "FAIL"} ${name}: max rel err ${err.toExponential(2)} (tol ${tol.toExponential(1)})`,
  );
};
if (rank === 0) console.log(`joined in ${Date.now() - t0} ms on ${k.device.name}`);

function input(r: number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(r * 1.7 + i * 0.013) * (1 + (i % 7));
  return x;
}
/** Error relative to the sum of magnitudes (the scale rounding errors of a sum live on). */
function relErr(got: Float32Array, want: Float64Array, scale: Float64Array): number {
  let e = 0;
  for (let i = 0; i < want.length; i++)
    e = Math.max(e, Math.abs(got[i]! - want[i]!) / (scale[i]! + 1e-30));
  return e;
}
function rounded(x: Float32Array, dtype: "f32" | "bf16"): Float32Array {
  const t = k.fromHost(x, [x.length], dtype);
  const r = t.toFloat32();
  t.dispose();
  return r;
}

async function correctness(c: Communicator, label: string): Promise<void> {
  const n = 3 * 1024 * c.size + 5 * c.size; // not a power of two
  for (const dtype of ["f32", "bf16"] as const) {
    // A sum of `size` terms rounded at each step: (size - 1) roundings of the dtype, plus one.
    const tol = c.size * (dtype === "f32" ? 2 ** -23 : 2 ** -8);
    const xs = c.members.map((g) => rounded(input(g, n), dtype));
    const sum = new Float64Array(n);
    const mag = new Float64Array(n);
    for (const x of xs) {
      for (let i = 0; i < n; i++) {
        sum[i]! += x[i]!;
        mag[i]! += Math.abs(x[i]!);
      }
    }
    const err = (got: Float32Array, want: Float64Array, lo = 0) =>
      relErr(got, want, mag.subarray(lo, lo + want.length));
    const mine = xs[c.rank]!;
    const t = k.fromHost(mine, [n], dtype);
    await c.allReduce(t, "sum");
    check(`${label} allReduce sum ${dtype}`, err(t.toFloat32(), sum), tol);
    t.copyFromHost(mine);
    await c.allReduce(t, "avg");
    check(
      `${label} allReduce avg ${dtype}`,
      relErr(
        t.toFloat32(),
        sum.map((v) => v / c.size),
        mag.map((v) => v / c.size),
      ),
      tol,
    );
    const chunk = n / c.size;
    const want = sum.subarray(c.rank * chunk, (c.rank + 1) * chunk);
    const out = k.empty([chunk], dtype);
    t.copyFromHost(mine);
    await c.reduceScatter(out, t, "sum");
    check(`${label} reduceScatter ${dtype}`, err(out.toFloat32(), want, c.rank * chunk), tol);
    t.copyFromHost(mine);
    const slice = t.view(c.rank * chunk, [chunk]);
    await c.reduceScatter(slice, t, "sum");
    check(
      `${label} reduceScatter in place ${dtype}`,
      err(slice.toFloat32(), want, c.rank * chunk),
      tol,
    );
    const gathered = k.empty([n], dtype);
    await c.allGather(gathered, out);
    check(`${label} allGather ${dtype}`, err(gathered.toFloat32(), sum), tol);
    await c.allGather(t, slice);
    check(`${label} allGather in place ${dtype}`, err(t.toFloat32(), sum), tol);
    // Reduce each chunk to its owner, with overlap (compute not ordered after it) then join:
    // the owner's chunk must equal the reduce-scatter result.
    t.copyFromHost(mine);
    const pieces = Array.from({ length: c.size }, (_, r) => t.view(r * chunk, [chunk]));
    for (let r = c.size - 1; r >= 0; r--) await c.reduce(pieces[r]!, r, "sum", { overlap: true });
    await c.join();
    check(
      `${label} reduce to owners (overlap + join) ${dtype}`,
      err(pieces[c.rank]!.toFloat32(), want, c.rank * chunk),
      tol,
    );
    for (const p of pieces) p.dispose();
    t.copyFromHost(mine);
    await c.broadcast(t, c.size - 1);
    check(`${label} broadcast ${dtype}`, err(t.toFloat32(), Float64Array.from(xs[c.size - 1]!)), 0);
    for (const x of [t, out, slice, gathered]) x.dispose();
  }
  await c.flush();
}

async function bandwidth(c: Communicator): Promise<string[]> {
  const lines: string[] = [];
  for (const mib of dry ? [1, 16] : [1, 16, 128, 1024]) {
    for (const dtype of ["bf16", "f32"] as const) {
      const bytesPer = dtype === "f32" ? 4 : 2;
      const n = Math.floor((mib * 2 ** 20) / bytesPer / c.size) * c.size;
      const big = k.zeros([n], dtype);
      const part = big.view(c.rank * (n / c.size), [n / c.size]);
      const ops: [string, () => Promise<void>, number][] = [
        ["allReduce", () => c.allReduce(big), (2 * (c.size - 1)) / c.size],
        ["reduceScatter", () => c.reduceScatter(part, big), (c.size - 1) / c.size],
        ["allGather", () => c.allGather(big, part), (c.size - 1) / c.size],
      ];
      for (const [op, run, factor] of ops) {
        for (let i = 0; i < 3; i++) await run();
        await c.flush();
        await c.barrier();
        const reps = dry ? 3 : mib >= 128 ? 10 : 50;
        const s = performance.now();
        for (let i = 0; i < reps; i++) await run();
        await c.flush();
        const sec = (performance.now() - s) / 1000 / reps;
        lines.push(
          `${String(c.size).padEnd(5)} ${op.padEnd(14)} ${dtype.padEnd(5)} ${String(mib).padStart(5)} MiB ${(sec * 1e3).toFixed(3).padStart(9)} ms  bus ${((n * bytesPer * factor) / sec / 1e9).toFixed(2).padStart(8)} GB/s`,
        );
      }
      part.dispose();
      big.dispose();
    }
  }
  return lines;
}

try {
  if (flag("kill")) {
    // The last rank leaves mid-run; the others are inside an all-reduce loop.
    const t = k.zeros([1 << 20], "f32");
    if (rank === W - 1) {
      await comm.allReduce(t);
      await comm.flush();
      process.exit(3);
    }
    const started = Date.now();
    try {
      for (;;) {
        await comm.allReduce(t);
        await comm.flush();
      }
    } catch (e) {
      const secs = (Date.now() - started) / 1000;
      const named = new RegExp(`rank ${W - 1}`).test((e as Error).message);
      console.log(`rank ${rank}: failed after ${secs.toFixed(1)} s: ${(e as Error).message}`);
      console.log(
        `${named && secs < 60 ? "PASS" : "FAIL"} killed rank named within 60 s (rank ${rank})`,
      );
      process.exit(1);
    }
  }
  await correctness(comm, `world(${W})`);
  if (W >= 2 && W % 2 === 0) {
    const half = W / 2;
    const node = await comm.split(Math.floor(rank / half), rank);
    await correctness(node, `node(${half})`);
    const replica = await comm.split(rank % half, rank);
    await correctness(replica, `replica(${W / half})`);
  }
  const bw = flag("no-bench") ? [] : await bandwidth(comm);
  if (rank === 0) {
    for (const r of rows) console.log(r);
    if (bw.length) {
      console.log("ranks op             dtype   size         time        bus bandwidth");
      for (const l of bw) console.log(l);
    }
  }
  const bad = await comm.allReduceHost([failures]);
  await shutdown();
  if (rank === 0) console.log(bad[0] === 0 ? "all collectives PASS" : `${bad[0]} FAILED checks`);
  process.exit(bad[0] === 0 ? 0 : 1);
} catch (e) {
  console.error(`rank ${rank}: ${(e as Error).message}`);
  process.exit(1);
}
