#!/usr/bin/env node
// Two (or more) builds of @tinyllama/tokenizer against each other in one process: each round
// encodes every text with encodeInto (ids + EOS into one Uint16Array, as the data pipeline
// does) once per build, builds alternated, CPU time. The minimum and median of the rounds
// per build are the figures; the spread within a build is the noise.
//
//   node tools/bench/tokenizer/ab-encode.mjs <texts.json> <dist dir>... [--rounds 14]
// texts.json: a JSON array of strings (e.g. texts-pipeline-order.json of a corpus kept by
// tools/bench/data/bench.mjs --keep). A dist dir is packages/tokenizer/dist of some commit,
// copied elsewhere with the package's vocab/ beside it (../vocab from the dist dir).
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: "string" } },
});
const [textsFile, ...dists] = positionals;
const rounds = Number(values.rounds ?? 14);
if (!textsFile || dists.length < 1 || !(rounds >= 1)) {
  console.error("usage: ab-encode.mjs <texts.json> <dist dir>... [--rounds N >= 1]");
  process.exit(2);
}
/** @type {string[]} */
const texts = JSON.parse(readFileSync(textsFile, "utf8"));
const toks = [];
for (const d of dists) {
  const { LlamaTokenizer } = await import(pathToFileURL(join(resolve(d), "index.js")).href);
  toks.push(await LlamaTokenizer.load());
}
let out = new Uint16Array(1 << 20);
/** @type {number[][]} */
const ms = dists.map(() => []);
for (let r = 0; r < rounds; r++)
  toks.forEach((tok, k) => {
    const c0 = process.cpuUsage();
    for (const t of texts) {
      if (out.length < 4 * t.length + 8) out = new Uint16Array(8 * t.length + 16);
      tok.encodeInto(t, out, 0, { bos: false, eos: true });
    }
    const c = process.cpuUsage(c0);
    ms[k]?.push(Math.round((c.user + c.system) / 1000));
  });
const median = (/** @type {number[]} */ v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2
    ? s[s.length >> 1]
    : ((s[s.length / 2 - 1] ?? 0) + (s[s.length / 2] ?? 0)) / 2;
};
console.log(
  JSON.stringify(
    dists.map((d, k) => ({
      dist: d,
      cpuMsMin: Math.min(...(ms[k] ?? [])),
      cpuMsMedian: median(ms[k] ?? []),
      cpuMsRounds: ms[k],
    })),
    null,
    1,
  ),
);
