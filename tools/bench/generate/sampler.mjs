#!/usr/bin/env node
// Host-side cost of sampling one token (TokenSampler.next over a 32,000-logit row) against the
// comparator sort it replaced, in the same process, modes alternated. At batch B the decode
// loop pays this B times per step on the host, whatever the device.
//
//   node tools/bench/generate/sampler.mjs [--rounds 5] [--tokens 200] [--json out.json]
// Needs pnpm build.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { runHeader } from "../data/report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: { rounds: { type: "string" }, tokens: { type: "string" }, json: { type: "string" } },
});
const rounds = Number(values.rounds ?? 5);
const tokens = Number(values.tokens ?? 200);
const { TokenSampler } = await import(
  pathToFileURL(join(root, "packages/trainer/dist/generate/sampling.js")).href
);
const VOCAB = 32000;
// Logits shaped like a language model's: a few large values over a broad normal-ish mass.
let seed = 1;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const rows = Array.from({ length: 16 }, () => {
  const r = new Float32Array(VOCAB);
  for (let j = 0; j < VOCAB; j++)
    r[j] = (rand() + rand() + rand() - 1.5) * 4 + (rand() < 0.001 ? 10 : 0);
  return r;
});

/** The sort the sampler used before (a comparator over an index array). */
function comparatorOrder(/** @type {Float32Array} */ logits) {
  /** @type {number[]} */
  const idx = [];
  for (let j = 0; j < VOCAB; j++) if (!Number.isNaN(logits[j])) idx.push(j);
  return idx.sort(
    (a, b) => /** @type {number} */ (logits[b]) - /** @type {number} */ (logits[a]) || a - b,
  );
}

const settings = [
  { name: "temperature 0.8", o: { temperature: 0.8 } },
  { name: "temperature 0.8, top-p 0.9", o: { temperature: 0.8, topP: 0.9 } },
  { name: "temperature 0.8, top-k 50", o: { temperature: 0.8, topK: 50 } },
];
/** @type {Record<string, number[]>} ms per token */
const ms = {};
const record = (/** @type {string} */ name, /** @type {number} */ value) => {
  const list = ms[name] ?? [];
  list.push(value);
  ms[name] = list;
};
for (let r = 0; r < rounds + 1; r++) {
  for (const { name, o } of settings) {
    const sampler = new TokenSampler(o, 42);
    const t0 = performance.now();
    for (let i = 0; i < tokens; i++)
      sampler.next(/** @type {Float32Array} */ (rows[i % rows.length]), 0, VOCAB);
    if (r > 0) record(name, (performance.now() - t0) / tokens);
  }
  const t0 = performance.now();
  for (let i = 0; i < tokens; i++)
    comparatorOrder(/** @type {Float32Array} */ (rows[i % rows.length]));
  if (r > 0) record("the comparator sort alone (before)", (performance.now() - t0) / tokens);
}
const median = (/** @type {number[]} */ xs) =>
  [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? Number.NaN;
const report = {
  ...runHeader(),
  command: `node tools/bench/generate/sampler.mjs --rounds ${rounds} --tokens ${tokens}`,
  vocab: VOCAB,
  "ms per token, median of rounds": Object.fromEntries(
    Object.entries(ms).map(([k, v]) => [k, +median(v).toFixed(3)]),
  ),
};
console.log(JSON.stringify(report, null, 2));
if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
