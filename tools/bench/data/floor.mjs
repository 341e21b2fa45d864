#!/usr/bin/env node
// The least any pipeline over these inputs must pay besides tokenizing, next to tokenizing
// alone, in one warm process: the question is whether the target (the whole pipeline
// at most 1.3x tokenizing alone) is reachable at all with this tokenizer, whatever the
// pipeline's design.
//
// Modes, alternated round by round, process CPU time (every thread), same documents:
//   tokenize      encodeInto of every text (ids + EOS into a reused buffer), as the pipeline
//   read          the pipeline's readers (readRecords: zstd, UTF-8, JSON.parse, parquet pages)
//   write         every document's ids + EOS (tokenized once before timing), written as
//                 2049 x 1024 LITPKDS chunks by the pipeline's ShardWriter (sha256 included),
//                 no dedup, no spool
//   signature     MinHasher.signature of every text (MinHash + exact key)
// The floor of a pipeline with dedup is tokenize + read + write + signature; without dedup,
// tokenize + read + write. Anything else a pipeline does (spool, stages, manifests, GC of its
// own objects) comes on top.
//
//   node tools/bench/data/floor.mjs --corpus <dir kept by bench.mjs --keep> [--rounds 6]
//     [--json out.json]
// Needs pnpm build (or BENCH_DATA).
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { median, runHeader } from "./report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: { corpus: { type: "string" }, rounds: { type: "string" }, json: { type: "string" } },
});
const corpus = values.corpus;
const rounds = Number(values.rounds ?? 6);
if (!corpus || !(rounds >= 2)) {
  console.error("usage: floor.mjs --corpus <dir> [--rounds N >= 2] [--json out.json]");
  process.exit(2);
}
// BENCH_DATA: the data package bundled, as on the GPU machines (gpu-check/build.sh)
const dataJs = process.env.BENCH_DATA ?? join(root, "packages/data/dist/index.js");
const D = await import(pathToFileURL(dataJs).href);

/** @type {string[]} */
const texts = JSON.parse(readFileSync(join(corpus, "texts-pipeline-order.json"), "utf8"));
const textMB = texts.reduce((a, t) => a + Buffer.byteLength(t), 0) / 1e6;
/** @param {string} dir @returns {string[]} */
const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
const inputs = walk(join(corpus, "corpus")).sort();
const tok = await D.loadPipelineTokenizer("llama2");
const hasher = new D.MinHasher();
let ids = new Uint16Array(1 << 16);
const out = join(corpus, "floor-out");
/** every document's ids + EOS, for the write mode */
const tokenized = texts.map((text) => {
  if (ids.length < text.length * 3 + 1) ids = new Uint16Array(text.length * 4 + 16);
  return ids.slice(0, tok.encodeInto(text, ids, 0));
});

/** @type {Record<string, () => Promise<number>>} each returns a checksum-like count */
const modes = {
  tokenize: async () => {
    let n = 0;
    for (const text of texts) {
      if (ids.length < text.length * 3 + 1) ids = new Uint16Array(text.length * 4 + 16);
      n += tok.encodeInto(text, ids, 0);
    }
    return n;
  },
  read: async () => {
    let n = 0;
    const bad = new D.BadRecordLog();
    for (const f of inputs) {
      for await (const r of D.readRecords(f, D.formatOf(f), bad)) {
        const v = r.value.text ?? r.value.content;
        n += typeof v === "string" ? v.length : 0;
      }
    }
    return n;
  },
  write: async () => {
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    const w = new D.ShardWriter({ dir: out, prefix: "floor" });
    let n = 0;
    for (const docIds of tokenized) {
      n += docIds.length;
      await w.add(docIds);
    }
    await w.finish();
    return n;
  },
  signature: async () => {
    let n = 0;
    for (const text of texts) n += hasher.signature(text).shingles;
    return n;
  },
};
/** @type {Record<string, number[]>} */
const cpu = Object.fromEntries(Object.keys(modes).map((m) => [m, []]));
for (let r = 0; r < rounds + 1; r++) {
  for (const [name, run] of Object.entries(modes)) {
    const c0 = process.cpuUsage();
    await run();
    const c = process.cpuUsage(c0);
    if (r > 0) cpu[name]?.push((c.user + c.system) / 1e6); // round 0 warms up
  }
  console.error(`round ${r}/${rounds}`);
}
rmSync(out, { recursive: true, force: true });
const inputMB = inputs.reduce((a, f) => a + statSync(f).size, 0) / 1e6;
/** @param {string} m */
const med = (m) => median(cpu[m] ?? []);
const t = med("tokenize");
const read = med("read");
const write = med("write");
const sig = med("signature");
const report = {
  ...runHeader(),
  command: `node tools/bench/data/floor.mjs --corpus <dir> --rounds ${rounds}`,
  textMB: +textMB.toFixed(2),
  inputMB: +inputMB.toFixed(2),
  "CPU-s per mode, median (min) of rounds": Object.fromEntries(
    Object.entries(cpu).map(([m, xs]) => [
      m,
      `${median(xs).toFixed(3)} (${Math.min(...xs).toFixed(3)})`,
    ]),
  ),
  "of tokenizing, medians": Object.fromEntries(
    Object.keys(cpu).map((m) => [m, +(med(m) / t).toFixed(3)]),
  ),
  "floor without dedup: (tokenize + read + write) / tokenize": +((t + read + write) / t).toFixed(3),
  "floor with dedup: (tokenize + read + write + signature) / tokenize": +(
    (t + read + write + sig) /
    t
  ).toFixed(3),
  "per round": cpu,
};
console.log(JSON.stringify(report, null, 2));
if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
