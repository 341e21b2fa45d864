#!/usr/bin/env node
// Benchmark of @tinyllama/data/mixture, side by side with the reference implementation's
// sampler (TinyLlama's lit_gpt CombinedDatasetIterator: Python random.Random(seed).choices
// per block), run here through python3 in the same process tree.
//
//   node tools/bench/mixture/bench.mjs            # throughput, resume cost, discrepancy (~1 min)
//   node tools/bench/mixture/bench.mjs --full     # + every preset over its whole stage at
//                                                 #   2048 tokens per block (~3G blocks, long)
//   node tools/bench/mixture/bench.mjs --full --random   # + the same in random mode
//
// The module is bundled from source with esbuild (tools' dev dependency) into a temp file, so
// no build of packages/data is needed. Results go to stdout (markdown) and to
// tools/bench/mixture/last-run.json (metrics a person can plot or diff).
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const args = new Set(process.argv.slice(2));
for (const a of args) {
  if (!["--full", "--random", "--help"].includes(a)) {
    console.error(`unknown argument ${a}; usage: bench.mjs [--full [--random]]`);
    process.exit(2);
  }
}
if (args.has("--help")) {
  console.log("usage: node tools/bench/mixture/bench.mjs [--full [--random]]");
  process.exit(0);
}

const outDir = mkdtempSync(join(tmpdir(), "mixture-bench-"));
const bundle = join(outDir, "mixture.mjs");
await build({
  entryPoints: [join(root, "packages/data/src/mixture/index.ts")],
  bundle: true,
  format: "esm",
  platform: "neutral",
  outfile: bundle,
  logLevel: "warning",
});
/** @type {any} */
const mix = await import(pathToFileURL(bundle).href);

/** @type {Record<string, unknown>} */
const metrics = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model ?? "unknown",
  loadavgAtStart: loadavg(),
  commit: spawnSync("git", ["rev-parse", "--short", "HEAD"], {
    cwd: root,
    encoding: "utf8",
  }).stdout.trim(),
};
console.log(
  `# mixture bench ${metrics.date}, ${metrics.cpu}, node ${metrics.node}, commit ${metrics.commit}`,
);
console.log(
  `load average at start: ${loadavg()
    .map((v) => v.toFixed(2))
    .join(" ")} (${cpus().length} cores)\n`,
);

/**
 * Median over `repeats` of the time per call of fn() over n calls, in nanoseconds.
 * @param {() => void} fn @param {number} n @param {number} repeats
 */
function nsPerCall(fn, n, repeats = 5) {
  const times = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    times.push(Number(process.hrtime.bigint() - t0) / n);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}

// 1. Throughput of the sampler (ns per global block), per mode, preset and world size.
console.log("## Sampler throughput (ns per next() call; a call consumes W global blocks)\n");
console.log("| preset | mode | W=1 | W=8 | W=64 |");
console.log("| --- | --- | ---: | ---: | ---: |");
/** @type {any[]} */
const throughput = [];
for (const name of ["v1.0", "v1.1-continual-math-code"]) {
  for (const mode of ["low-discrepancy", "random"]) {
    /** @type {number[]} */
    const row = [];
    for (const worldSize of [1, 8, 64]) {
      const s = new mix.MixtureSampler({
        schedule: name,
        seed: 1,
        mode,
        rank: worldSize - 1,
        worldSize,
      });
      const n = Math.max(20000, Math.floor(2_000_000 / worldSize));
      nsPerCall(() => s.next(), n, 1); // warm up
      row.push(nsPerCall(() => s.next(), n));
    }
    throughput.push({ preset: name, mode, nsPerCall: row });
    console.log(`| ${name} | ${mode} | ${row.map((v) => v.toFixed(0)).join(" | ")} |`);
  }
}
metrics.throughput = throughput;

// 2. Per-source block order: ns per at() for a SlimPajama-sized source (about 3e8 blocks).
const files = Array.from({ length: 300_000 }, (_, i) => ({
  name: `train_slimpajama_${String(i).padStart(10, "0")}.bin`,
  blocks: 1024,
}));
const t0 = process.hrtime.bigint();
const order = new mix.SourceBlockOrder({ files, seed: 1, name: "slimpajama" });
const orderBuildMs = Number(process.hrtime.bigint() - t0) / 1e6;
let index = 0;
const atNs = nsPerCall(() => {
  index += 7919;
  order.at(index);
}, 1_000_000);
console.log(
  `\n## Block order\n\nSourceBlockOrder over 300,000 files x 1,024 blocks: built in ${orderBuildMs.toFixed(0)} ms (sorting the file list), at() ${atNs.toFixed(0)} ns per block.\n`,
);
metrics.blockOrder = {
  files: files.length,
  blocks: files.length * 1024,
  buildMs: orderBuildMs,
  atNs,
};

// 3. Resume cost: restore() at block 1e9 against replaying the stream to that point.
{
  const s = new mix.MixtureSampler({ schedule: "v1.0", seed: 1 });
  for (let i = 0; i < 1000; i++) s.next();
  const state = s.state();
  const far = { ...state, position: 1e9, counts: { slimpajama: 693584000, starcoder: 306416000 } };
  const restoreUs =
    nsPerCall(() => mix.MixtureSampler.restore(JSON.parse(JSON.stringify(far))), 2000) / 1000;
  const perBlock = /** @type {number} */ (throughput[0].nsPerCall[0]);
  console.log(
    `## Resume\n\nrestore() at global block 1e9 (2.05T tokens into v1.0): ${restoreUs.toFixed(1)} us including JSON parse. Replaying the sampler alone to that point would take ${((perBlock * 1e9) / 1e9).toFixed(0)} s; the reference run replayed (skipped) whole batches through its data loader.\n`,
  );
  metrics.resume = { restoreUs, replaySeconds: (perBlock * 1e9) / 1e9 };
}

// 4. Discrepancy and speed against the reference sampler, v1.0 weights, same n.
const N = 10_000_000;
console.log(
  `## Discrepancy over the first ${N.toLocaleString("en-US")} blocks of v1.0 (max over every prefix of |realised - expected| blocks, StarCoder)\n`,
);
/** @type {any[]} */
const discrepancy = [];
for (const mode of ["low-discrepancy", "random"]) {
  const report = mix.simulateStage({ schedule: "v1.0", seed: 12345, mode, blocks: N, windows: 10 });
  const star = report.sources.indexOf("starcoder");
  discrepancy.push({
    sampler: `tinyllama-ts ${mode}`,
    maxAbsDeviation: report.maxAbsDeviation[star],
    finalShare: report.realisedShare[star],
    nsPerBlock: 1e9 / report.blocksPerSecond,
  });
}
const python = spawnSync(
  "python3",
  [
    "-c",
    `
import random, time, json, sys
n = int(sys.argv[1])
names = ["slimpajama", "starcoder"]
weights = [0.693584, 0.306416]
rng = random.Random(12345)          # as CombinedDatasetIterator(datasets, seed, weights)
t0 = time.perf_counter()
for _ in range(n):
    (d,) = rng.choices(names, weights=weights, k=1)
seconds = time.perf_counter() - t0
rng = random.Random(12345)
c = 0
worst = 0.0
for i in range(1, n + 1):
    (d,) = rng.choices(names, weights=weights, k=1)
    if d == "starcoder":
        c += 1
    dev = abs(c - i * 0.306416)
    if dev > worst:
        worst = dev
print(json.dumps({"nsPerBlock": seconds / n * 1e9, "maxAbsDeviation": worst, "finalShare": c / n}))
`,
    String(N),
  ],
  { encoding: "utf8" },
);
if (python.status === 0) {
  discrepancy.push({ sampler: "reference (Python random.choices)", ...JSON.parse(python.stdout) });
} else {
  console.log(
    `reference not run: python3 failed (${python.error?.message ?? python.stderr.trim()})\n`,
  );
}
console.log("| sampler | max abs deviation (blocks) | StarCoder share | ns per block |");
console.log("| --- | ---: | ---: | ---: |");
for (const d of discrepancy) {
  console.log(
    `| ${d.sampler} | ${mix.formatDeviation(d.maxAbsDeviation)} | ${(d.finalShare * 100).toFixed(4)}% | ${d.nsPerBlock.toFixed(0)} |`,
  );
}
metrics.discrepancy = discrepancy;

// 5. Optional: every preset over its whole stage at 2048 tokens per block.
if (args.has("--full")) {
  const modes = args.has("--random") ? ["low-discrepancy", "random"] : ["low-discrepancy"];
  console.log("\n## Every preset over its whole stage, 2048 tokens per block\n");
  console.log(
    "| preset | mode | blocks | source | realised (stage) | scheduled (stage avg) | realised after the last knot | paper (steady) | max abs dev (blocks) | s |",
  );
  console.log("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  /** @type {any[]} */
  const stages = [];
  for (const mode of modes) {
    for (const name of mix.PRESET_NAMES) {
      const started = Date.now();
      const report = mix.simulateStage({
        schedule: name,
        seed: 0,
        mode,
        windows: 100,
        /** @param {number} done @param {number} total */
        onProgress: (done, total) => {
          const rate = done / ((Date.now() - started) / 1000);
          process.stderr.write(
            `  ${name} ${mode}: ${((100 * done) / total).toFixed(1)}%, ${(rate / 1e6).toFixed(2)}M blocks/s, ETA ${Math.ceil((total - done) / rate)} s\n`,
          );
        },
        progressEvery: 2 ** 26,
      });
      // Realised share over the windows after the schedule's last knot (the ramp's end), where
      // the paper's steady-state shares apply; windows are aligned to knots.
      const lastKnot = Math.max(...mix.preset(name).points.map((/** @type {any} */ p) => p.tokens));
      const steadyWindows = report.windows.filter(
        (/** @type {any} */ w) => w.startTokens >= lastKnot,
      );
      const steadyBlocks = steadyWindows.reduce(
        (/** @type {number} */ a, /** @type {any} */ w) =>
          a + (w.endTokens - w.startTokens) / report.blockTokens,
        0,
      );
      const steadyShare = report.sources.map(
        (/** @type {string} */ _, /** @type {number} */ s) =>
          steadyWindows.reduce(
            (/** @type {number} */ a, /** @type {any} */ w) =>
              a + (w.realised[s] * (w.endTokens - w.startTokens)) / report.blockTokens,
            0,
          ) / steadyBlocks,
      );
      report.sources.forEach((/** @type {string} */ source, /** @type {number} */ s) => {
        console.log(
          `| ${name} | ${mode} | ${report.blocks.toLocaleString("en-US")} | ${source} | ${(report.realisedShare[s] * 100).toFixed(5)}% | ${(report.expectedShare[s] * 100).toFixed(5)}% | ${(steadyShare[s] * 100).toFixed(5)}% | ${((mix.PAPER_SHARES[name][source] ?? 0) * 100).toFixed(3)}% | ${mix.formatDeviation(report.maxAbsDeviation[s])} | ${report.seconds.toFixed(0)} |`,
        );
      });
      stages.push({ ...report, windows: undefined, steadyShare, steadyBlocks });
    }
  }
  metrics.stages = stages;
} else {
  console.log("\nfull-stage runs not run (pass --full; about 3 billion blocks per mode)");
}

metrics.loadavgAtEnd = loadavg();
writeFileSync(join(here, "last-run.json"), `${JSON.stringify(metrics, null, 1)}\n`);
console.log(`\nmetrics written to ${join(here, "last-run.json")}`);
