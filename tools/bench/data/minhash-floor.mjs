#!/usr/bin/env node
// How much of the dedup's signature pass any JavaScript MinHash must pay: the pass
// (MinHasher.signature) against its character scan alone, with the same table and the same
// word-boundary branches but no per-word work, and against a bare charCodeAt loop, all next to
// tokenizing the same documents (encodeInto, as the pipeline does). One process, the modes
// alternated round by round, CPU time; the minimum of the rounds is the least disturbed run.
//
//   node tools/bench/data/minhash-floor.mjs <texts.json> [--rounds 6]
// texts.json: the documents as a JSON array of strings, e.g. texts-pipeline-order.json of a
// corpus kept by `bench.mjs --keep`. Needs pnpm build.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: "string" } },
});
const file = positionals[0];
const rounds = Number(values.rounds ?? 6);
if (!file || !(rounds >= 1)) {
  console.error("usage: minhash-floor.mjs <texts.json> [--rounds N >= 1]");
  process.exit(2);
}
const load = (/** @type {string} */ p) => import(pathToFileURL(join(root, p)).href);
const { LlamaTokenizer } = await load("packages/tokenizer/dist/index.js");
const { MinHasher, normTable } = await load("packages/data/dist/dedup/minhash.js");
/** @type {string[]} */
const texts = JSON.parse(readFileSync(file, "utf8"));
const units = texts.reduce((a, t) => a + t.length, 0);
const tok = await LlamaTokenizer.load();
const hasher = new MinHasher();
const norm = normTable();
let ids = new Uint16Array(1 << 20);

/** @type {Record<string, (t: string) => number>} */
const modes = {
  tokenize: (t) => {
    // the pipeline's worst case per document, so encodeInto never runs out of room
    if (ids.length < 4 * t.length + 8) ids = new Uint16Array(8 * t.length + 16);
    return tok.encodeInto(t, ids, 0, { bos: false, eos: true });
  },
  signature: (t) => hasher.signature(t).words,
  // signature()'s loop with addWord reduced to a sum: the table lookup, FNV and word-end branch
  wordScan: (t) => {
    let h = 0;
    let sum = 0;
    let inWord = false;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      const v = norm[c];
      if (v > 0) {
        if (!inWord) {
          h = 0x811c9dc5;
          inWord = true;
        }
        h = Math.imul(h ^ v, 0x01000193);
      } else {
        if (inWord) {
          sum = (sum + h) | 0;
          inWord = false;
        }
        if (v < 0) sum = (sum + c) | 0;
      }
    }
    return inWord ? (sum + h) | 0 : sum;
  },
  charCodeAt: (t) => {
    let s = 0;
    for (let i = 0; i < t.length; i++) s = (s + t.charCodeAt(i)) | 0;
    return s;
  },
};
/** @type {Record<string, number[]>} */
const ms = Object.fromEntries(Object.keys(modes).map((k) => [k, []]));
let sink = 0;
for (let r = 0; r < rounds; r++)
  for (const [name, f] of Object.entries(modes)) {
    const c0 = process.cpuUsage();
    for (const t of texts) sink ^= f(t);
    const c = process.cpuUsage(c0);
    ms[name]?.push((c.user + c.system) / 1000);
  }
const best = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, Math.min(...v)]));
const report = {
  documents: texts.length,
  utf16Units: units,
  rounds,
  cpuMsMin: best,
  cpuMsAll: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, v.map(Math.round)])),
  nsPerUnit: Object.fromEntries(
    Object.entries(best).map(([k, v]) => [k, +((v * 1e6) / units).toFixed(2)]),
  ),
  ofTokenize: Object.fromEntries(
    Object.entries(best).map(([k, v]) => [k, +(v / (best.tokenize ?? Number.NaN)).toFixed(3)]),
  ),
  sink,
};
console.log(JSON.stringify(report, null, 2));
