#!/usr/bin/env node
// Time of the reference initialisation (every parameter's normals, as Trainer.initWeights draws
// them, without a backend), with the worker pool and with one thread (TINYLLAMA_INIT_THREADS=1)
// in the same run, and whether both gave the same bits (a hash of every value).
//   node tools/bench/train/init-bench.mjs [--model tinyllama-1.1b] [--seed 3407]
// Needs: pnpm build.
import { spawnSync } from "node:child_process";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: { model: { type: "string" }, seed: { type: "string" }, child: { type: "boolean" } },
});
const model = values.model ?? "tinyllama-1.1b";
const seed = Number(values.seed ?? 3407);

if (values.child) {
  const dist = join(root, "packages/trainer/dist/model");
  const { Rng } = await import(pathToFileURL(join(dist, "rng.js")).href);
  const { modelConfig, parameterSpecs } = await import(pathToFileURL(join(dist, "config.js")).href);
  const t0 = performance.now();
  const rng = new Rng(seed);
  let values = 0;
  let hash = 0x811c9dc5;
  for (const s of parameterSpecs(modelConfig(model))) {
    const n = s.shape.reduce((/** @type {number} */ a, /** @type {number} */ b) => a * b, 1);
    const data = new Float32Array(n);
    if (s.initOnes) data.fill(1);
    else rng.fillNormal(data, s.initStd);
    values += n;
    // FNV-1a over every 1021st value: a cheap guard that both runs drew the same weights
    // (packages/trainer/src/model/rng.test.ts checks every bit).
    const words = new Uint32Array(data.buffer);
    for (let i = 0; i < words.length; i += 1021)
      hash = Math.imul(hash ^ (words[i] ?? 0), 0x01000193) >>> 0;
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ values, seconds, hash }));
  process.exit(0);
}

/** @param {number | undefined} threads @returns {{ values: number, seconds: number, hash: number }} */
const run = (threads) => {
  const env = { ...process.env };
  if (threads) env.TINYLLAMA_INIT_THREADS = String(threads);
  else delete env.TINYLLAMA_INIT_THREADS;
  const r = spawnSync(
    process.execPath,
    [fileURLToPath(import.meta.url), "--child", "--model", model, "--seed", String(seed)],
    {
      env,
      encoding: "utf8",
    },
  );
  if (r.status !== 0) throw new Error(`init child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
};
const pooled = run(undefined);
const single = run(1);
console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: `${cpus()[0]?.model ?? "cpu"} x${availableParallelism()}, node ${process.version}`,
      model,
      seed,
      values: pooled.values,
      "seconds, worker pool (default)": Number(pooled.seconds.toFixed(2)),
      "seconds, one thread": Number(single.seconds.toFixed(2)),
      speedup: Number((single.seconds / pooled.seconds).toFixed(2)),
      "same bits (sampled hash)": pooled.hash === single.hash,
    },
    null,
    2,
  ),
);
