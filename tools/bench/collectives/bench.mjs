// CPU collective bandwidth of the TCP transport (@tinyllama/kernels/collectives): W processes
// on this host over 127.0.0.1, all-reduce / reduce-scatter / all-gather of f32 and bf16
// buffers. Reports algorithm bandwidth (bytes of the tensor / time) and bus bandwidth (NCCL's
// convention: all-reduce x 2(W-1)/W, reduce-scatter and all-gather x (W-1)/W), median of the
// timed repetitions. Needs the kernels package built (dist/ and build/).
//   node tools/bench/collectives/bench.mjs [--ranks 2,3] [--mib 1,16,64] [--reps 5]
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const kernels = join(here, "..", "..", "..", "packages", "kernels", "dist");
/** @param {string} name @param {string} def */
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : (process.argv[i + 1] ?? def);
};

if (process.env.BENCH_RANK !== undefined) {
  const { loadBackend } = await import(join(kernels, "index.js"));
  const { TcpWorld } = await import(join(kernels, "collectives", "index.js"));
  const rank = Number(process.env.BENCH_RANK);
  const W = Number(process.env.BENCH_WORLD);
  const k = await loadBackend("cpu");
  const world = await TcpWorld.connect({
    rank,
    worldSize: W,
    masterAddr: "127.0.0.1",
    masterPort: Number(process.env.BENCH_PORT),
  });
  const comm = world.communicator();
  const reps = Number(process.env.BENCH_REPS);
  const rows = [];
  for (const mib of (process.env.BENCH_MIB ?? "1").split(",").map(Number)) {
    for (const dtype of ["f32", "bf16"]) {
      const bytesPer = dtype === "f32" ? 4 : 2;
      const n = Math.floor((mib * 2 ** 20) / bytesPer / W) * W;
      const big = k.zeros([n], dtype);
      const part = big.view(rank * (n / W), [n / W]);
      const ops = {
        allReduce: () => comm.allReduce(big),
        reduceScatter: () => comm.reduceScatter(part, big),
        allGather: () => comm.allGather(big, part),
      };
      for (const [op, run] of Object.entries(ops)) {
        await run();
        const times = [];
        for (let i = 0; i < reps; i++) {
          await comm.barrier();
          const t0 = performance.now();
          await run();
          times.push((performance.now() - t0) / 1000);
        }
        times.sort((a, b) => a - b);
        const t = times[Math.floor(times.length / 2)] ?? Number.NaN;
        const bytes = n * bytesPer;
        const factor = op === "allReduce" ? (2 * (W - 1)) / W : (W - 1) / W;
        rows.push({
          W,
          op,
          dtype,
          mib,
          ms: t * 1000,
          algGBs: bytes / t / 1e9,
          busGBs: (bytes * factor) / t / 1e9,
        });
      }
      part.dispose();
      big.dispose();
    }
  }
  await comm.barrier();
  if (rank === 0) process.stdout.write(`${JSON.stringify(rows)}\n`);
  world.close();
  process.exit(0);
}

const ranksList = arg("ranks", "2,3").split(",").map(Number);
const mib = arg("mib", "1,16,64");
const reps = arg("reps", "5");
console.log(`TCP collectives over 127.0.0.1, median of ${reps}; bus GB/s as NCCL counts it`);
console.log("ranks | op            | dtype | MiB | ms      | alg GB/s | bus GB/s");
let port = 29800 + Math.floor(Math.random() * 1000);
for (const W of ranksList) {
  port++;
  const children = Array.from({ length: W }, (_, r) =>
    spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      env: {
        ...process.env,
        BENCH_RANK: String(r),
        BENCH_WORLD: String(W),
        BENCH_PORT: String(port),
        BENCH_MIB: mib,
        BENCH_REPS: reps,
      },
      stdio: ["ignore", "pipe", "inherit"],
    }),
  );
  let out = "";
  children[0]?.stdout.on("data", (d) => {
    out += d;
  });
  await Promise.all(children.map((c) => new Promise((r) => c.on("exit", r))));
  for (const row of JSON.parse(out)) {
    console.log(
      `${String(row.W).padEnd(5)} | ${row.op.padEnd(13)} | ${row.dtype.padEnd(5)} | ${String(row.mib).padStart(3)} | ${row.ms.toFixed(1).padStart(7)} | ${row.algGBs.toFixed(3).padStart(8)} | ${row.busGBs.toFixed(3).padStart(8)}`,
    );
  }
}
