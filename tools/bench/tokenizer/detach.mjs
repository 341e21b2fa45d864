// Does threaded encodeBatch slow down typed-array code afterwards? Measures, in one process:
// the calling thread's encode rate before and after threaded batches, and each batch's rate
// on the worker. --trace sets V8's --trace-protector-invalidation for every thread (worker
// threads refuse V8 flags in execArgv, but V8 flags are process-wide).
//   node tools/bench/tokenizer/detach.mjs [--dist <package dir>] [--scale 0.1] [--batches 4] [--trace]
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { buildCorpus } from "./corpus.mjs";
import { pkgDir } from "./load.mjs";

const { values } = parseArgs({
  options: {
    dist: { type: "string", default: pkgDir },
    scale: { type: "string", default: "0.1" },
    batches: { type: "string", default: "4" },
    threads: { type: "string", default: "1" },
    trace: { type: "boolean", default: false },
  },
});
if (values.trace) setFlagsFromString("--trace-protector-invalidation");
if (process.env.DETACH_TRACE_DEOPT) setFlagsFromString("--trace-deopt");
const dir = values.dist.endsWith("/") ? values.dist : `${values.dist}/`;
const { LlamaTokenizer } = await import(pathToFileURL(`${dir}dist/index.js`).href);
const testing = await import(pathToFileURL(`${pkgDir}dist/testing/varied-text.js`).href);
const tok = await LlamaTokenizer.load();
const docs = buildCorpus({
  scale: Number(values.scale),
  variedTexts: testing.variedTexts,
  rng: testing.rng,
  pieces: tok.model.pieces,
}).map((d) => d.text ?? d);
const mb = docs.reduce((s, t) => s + Buffer.byteLength(t), 0) / 1e6;

function mainPass() {
  // A fresh instance each pass, so the word cache starts empty every time.
  const t = LlamaTokenizer.fromModel(tok.model);
  const t0 = performance.now();
  let n = 0;
  for (const d of docs) n += t.encodeToInt32Array(d).length;
  return { mbps: mb / ((performance.now() - t0) / 1000), n };
}
/** @type {{ mb: number, before: number[], batches: number[], after: number[] }} */
const result = { mb, before: [], batches: [], after: [] };
for (let i = 0; i < 3; i++) result.before.push(mainPass().mbps);
for (let b = 0; b < Number(values.batches); b++) {
  const t0 = performance.now();
  await tok.encodeBatchToInt32Arrays(docs, { threads: Number(values.threads) });
  result.batches.push(mb / ((performance.now() - t0) / 1000));
}
for (let i = 0; i < 3; i++) result.after.push(mainPass().mbps);
await tok.close();
/** @param {number[]} xs */
const f = (xs) => xs.map((x) => x.toFixed(1)).join(" ");
console.log(
  `${mb.toFixed(2)} MB  main before: ${f(result.before)}  batches(worker): ${f(result.batches)}  main after: ${f(result.after)} MB/s`,
);
console.log(JSON.stringify(result));
