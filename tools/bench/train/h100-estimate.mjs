#!/usr/bin/env node
// What a training run measured on an H200 would give on an H100 SXM, from the run's own files.
// The two cards share the GH100 chip (132 SMs, the same clocks and 989 TFLOP/s of dense bf16);
// they differ in memory bandwidth (H200 4.8 TB/s HBM3e, H100 SXM 3.35 TB/s HBM3). So the
// matmuls and the attention kernels (compute- or latency-bound) are taken to run as fast on both,
// and every other op of the per-op profile (RMSNorm, SwiGLU, RoPE, AdamW, cross-entropy, fills,
// embedding, sums: memory-bound) to take bandwidth-ratio times longer. The profile synchronises
// around each op, so each op's time there includes a fixed per-call cost (launch, host wait)
// that does not scale with bandwidth; it is taken as the profile's cheapest call (a 2048-element
// fill: ~20 us on an H200, nearly all of it overhead) and left out of what is scaled. Both
// estimates are printed: without that correction (the slower bound) and with it. No H100 has
// been lent to this project; this is the estimate the throughput notes quote, made reproducible.
//
//   node tools/bench/train/h100-estimate.mjs <run dir>... [--from-tbs 4.8] [--to-tbs 3.35]
// A run dir is what `tools/bench/train/run-gpu.sh` keeps per configuration (ours-mb8, ...):
// it holds <stage>/profile.json (written by --profile-step) and <stage>/metrics.jsonl.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { "from-tbs": { type: "string" }, "to-tbs": { type: "string" } },
});
const fromTbs = Number(values["from-tbs"] ?? 4.8);
const toTbs = Number(values["to-tbs"] ?? 3.35);
if (!(fromTbs > 0) || !(toTbs > 0)) {
  console.error("--from-tbs and --to-tbs must be positive numbers (TB/s)");
  process.exit(2);
}
if (positionals.length === 0) {
  console.error(
    "usage: node tools/bench/train/h100-estimate.mjs <run dir>... [--from-tbs 4.8] [--to-tbs 3.35]",
  );
  process.exit(2);
}

/** Ops that are not memory-bound: they keep their time on the other card. */
const computeBound = (/** @type {string} */ key) =>
  /^(matmul|attentionForward|attentionBackward)\b/.test(key);

/** @param {string} dir */
function stageDir(dir) {
  if (existsSync(join(dir, "profile.json"))) return dir;
  const sub = readdirSync(dir, { withFileTypes: true }).find(
    (e) => e.isDirectory() && existsSync(join(dir, e.name, "profile.json")),
  );
  if (!sub)
    throw new Error(`${dir}: no profile.json here or one level down (run with --profile-step)`);
  return join(dir, sub.name);
}

/** @param {number[]} xs */
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

console.log(
  "| run | step s (measured) | tokens/s | MFU | memory-bound ms (profiled / less per-call cost) | per-call cost us | H100 SXM est.: step s | tokens/s | MFU |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const dir of positionals) {
  if (!existsSync(dir)) {
    console.error(`${dir}: no such run directory`);
    process.exit(1);
  }
  const sd = stageDir(dir);
  /** @type {{ step: number, seconds: number, rows: { key: string, calls: number, ms: number }[] }} */
  const profile = JSON.parse(readFileSync(join(sd, "profile.json"), "utf8"));
  /** @type {{ kind: string, step: number, stepSeconds: number, tokensPerSec: number, mfu: number }[]} */
  const train = readFileSync(join(sd, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
    .filter((r) => r.kind === "train");
  // steady steps: not the first two (warm-up) and not the profiled one (synchronised per op)
  const steady = train.filter((r) => r.step > 2 && r.step !== profile.step);
  if (steady.length === 0) throw new Error(`${sd}: no steady training steps in metrics.jsonl`);
  const step = median(steady.map((r) => r.stepSeconds));
  const tokensPerStep = median(steady.map((r) => r.tokensPerSec * r.stepSeconds));
  const mfuPerTokenPerSec = median(steady.map((r) => r.mfu / r.tokensPerSec));
  const perCall = Math.min(...profile.rows.map((r) => r.ms / r.calls));
  const mem = profile.rows.filter((r) => !computeBound(r.key));
  const memMs = mem.reduce((a, r) => a + r.ms, 0);
  const memNetMs = mem.reduce((a, r) => a + Math.max(0, r.ms - r.calls * perCall), 0);
  const tps = tokensPerStep / step;
  const pct = (/** @type {number} */ x) => `${(100 * x).toFixed(1)}%`;
  const fmt = (/** @type {number} */ x) => Math.round(x).toLocaleString("en-US");
  const ests = [memMs, memNetMs].map((ms) => step + (ms / 1000) * (fromTbs / toTbs - 1));
  const estTps = ests.map((e) => tokensPerStep / e);
  console.log(
    `| ${dir} | ${step.toFixed(3)} | ${fmt(tps)} | ${pct(tps * mfuPerTokenPerSec)} | ${memMs.toFixed(1)} / ${memNetMs.toFixed(1)} | ${(perCall * 1000).toFixed(1)} | ` +
      `${ests.map((e) => e.toFixed(3)).join(" / ")} | ${estTps.map(fmt).join(" / ")} | ` +
      `${estTps.map((t) => pct(t * mfuPerTokenPerSec)).join(" / ")} |`,
  );
}
console.log(
  `\nBandwidth ratio ${fromTbs} / ${toTbs} TB/s applied to the memory-bound ops of each profiled step ` +
    "(as profiled / less the per-call cost, the profile's cheapest call, for each call); matmuls and attention unchanged.",
);
