#!/usr/bin/env node
// The pipeline's steady-state cost against tokenizing alone: what a worker pays per byte once it
// is warm, as on the real corpora, where one worker process runs hundreds of tasks.
//
// A fresh process spends its first passes compiling: in one 30 MB run V8's optimising compiler
// worked 0.7 CPU-s on background threads (0.36 s more than on 3 MB, so even marginal.mjs's
// small-vs-large difference still carries compile work). Here each child process repeats the
// whole job --passes times on the same corpus: the pipeline (every stage, in process, into a
// fresh output directory each pass) or the tokenizer alone (the same documents in the
// pipeline's order, already in memory). The last pass is the steady state; process CPU time
// counts every thread (main, V8's compiler and GC helpers, libuv's pool). Children alternate
// round by round so the machine's drift hits all alike. The corpus must be large enough that
// the tokenizer's word cache (64K words) cycles many times per pass, or repeated passes measure
// cache hits: on 3 MB a repeated pass took 0.05 CPU-s against 0.10 with a fresh cache, on 30 MB
// 0.87 against 0.86. Corpora under 20 MB of text are refused.
//
//   node tools/bench/data/steady.mjs --corpus <dir kept by bench.mjs --keep> [--passes 4]
//     [--rounds 3] [--json out.json]
// Needs pnpm build (or BENCH_DATA: the data package bundled, as on the GPU machines).
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { emptyTrash, median, retire, runHeader } from "./report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: {
    corpus: { type: "string" },
    passes: { type: "string" },
    rounds: { type: "string" },
    json: { type: "string" },
    child: { type: "string" },
  },
});
const corpus = values.corpus;
const passes = Number(values.passes ?? 4);
const rounds = Number(values.rounds ?? 3);
if (!corpus || !(passes >= 2) || !(rounds >= 1)) {
  console.error("usage: steady.mjs --corpus <dir> [--passes N >= 2] [--rounds N >= 1]");
  process.exit(2);
}
const MIN_TEXT_MB = 20;
const dataJs = process.env.BENCH_DATA ?? join(root, "packages/data/dist/index.js");
const cpuSeconds = (/** @type {NodeJS.CpuUsage} */ c) => (c.user + c.system) / 1e6;

if (values.child) {
  /** @type {number[]} */
  const perPass = [];
  let tokens = 0; // ids + EOS of the corpus (the tokenizer child counts them)
  const D = await import(pathToFileURL(dataJs).href);
  if (values.child === "tokenizer") {
    /** @type {string[]} */
    const texts = JSON.parse(readFileSync(join(corpus, "texts-pipeline-order.json"), "utf8"));
    const tok = await D.loadPipelineTokenizer("llama2");
    let ids = new Uint16Array(1 << 16);
    for (let p = 0; p < passes; p++) {
      const c0 = process.cpuUsage();
      // as the pipeline tokenizes: ids + EOS into a reused buffer, one document at a time
      // (a UTF-16 unit is at most 3 byte-fallback ids)
      tokens = 0;
      for (const text of texts) {
        if (ids.length < text.length * 3 + 1) ids = new Uint16Array(text.length * 4 + 16);
        tokens += tok.encodeInto(text, ids, 0);
      }
      perPass.push(cpuSeconds(process.cpuUsage(c0)));
    }
  } else {
    const user = JSON.parse(readFileSync(join(corpus, "config.json"), "utf8"));
    if (values.child === "no-dedup") user.dedup = { ...user.dedup, enabled: false };
    for (let p = 0; p < passes; p++) {
      user.output = join(corpus, "steady-out");
      retire(user.output); // not deleted while timing: see report.mjs
      const plan = await D.makePlan(D.resolveConfig(user, corpus));
      const c0 = process.cpuUsage();
      await D.runLocal(plan, { inProcess: true }); // progress lines go to stderr, ignored
      perPass.push(cpuSeconds(process.cpuUsage(c0)));
    }
    retire(join(corpus, "steady-out"));
  }
  console.log(JSON.stringify({ perPass: perPass.map((s) => +s.toFixed(3)), tokens }));
  process.exit(0);
}

const textBytes = /** @type {string[]} */ (
  JSON.parse(readFileSync(join(corpus, "texts-pipeline-order.json"), "utf8"))
).reduce((a, t) => a + Buffer.byteLength(t), 0);
const mb = textBytes / 1e6;
if (mb < MIN_TEXT_MB) {
  console.error(
    `steady.mjs: ${corpus} holds ${mb.toFixed(1)} MB of text; it needs at least ${MIN_TEXT_MB} MB, or the tokenizer's word cache holds the whole corpus and repeated passes measure cache hits (keep a larger corpus: bench.mjs --mb 30 --keep)`,
  );
  process.exit(2);
}
const children = ["tokenizer", "pipeline", "no-dedup"];
/** @type {Record<string, number[][]>} CPU-seconds per pass, one list per round */
const runs = Object.fromEntries(children.map((c) => [c, []]));
let corpusTokens = 0;
for (let r = 0; r < rounds; r++) {
  for (const child of children) {
    const args = [fileURLToPath(import.meta.url), "--child", child, "--corpus", corpus];
    const res = spawnSync(process.execPath, [...args, "--passes", String(passes)], {
      encoding: "utf8",
    });
    if (res.status !== 0) throw new Error(`${child} child failed:\n${res.stderr}`);
    const out = JSON.parse(res.stdout.trim().split("\n").slice(-1)[0] ?? "{}");
    runs[child]?.push(out.perPass);
    if (out.tokens > 0) corpusTokens = out.tokens;
  }
  console.error(`round ${r + 1}/${rounds} done`);
}
emptyTrash(corpus);

/** median over rounds of pass p (-1: the last) @param {string} c @param {number} p */
const passMedian = (c, p) => median((runs[c] ?? []).map((l) => l.at(p) ?? Number.NaN));
const tokSteady = passMedian("tokenizer", -1);
const row = (/** @type {string} */ c) => ({
  "first pass CPU-s": +passMedian(c, 0).toFixed(3),
  "last pass CPU-s (steady)": +passMedian(c, -1).toFixed(3),
  "steady MB per core-second": +(mb / passMedian(c, -1)).toFixed(2),
  "steady cost / tokenizer alone": +(passMedian(c, -1) / tokSteady).toFixed(3),
  "per round, every pass": runs[c],
});
const steadyRate = mb / passMedian("pipeline", -1);
// UTF-8 text bytes per token of this corpus (multilingual; English prose is nearer 4)
const bytesPerToken = textBytes / corpusTokens;
const report = {
  ...runHeader(),
  command: `node tools/bench/data/steady.mjs --corpus <dir> --passes ${passes} --rounds ${rounds}`,
  textMB: +mb.toFixed(2),
  tokenizer: row("tokenizer"),
  pipeline: row("pipeline"),
  "pipeline --no-dedup": row("no-dedup"),
  "text bytes per token": +bytesPerToken.toFixed(3),
  "projected core-hours at the steady rate, all four corpora (~1,155B tokens)": Math.round(
    (1155e9 * bytesPerToken) / 1e6 / steadyRate / 3600,
  ),
};
console.log(JSON.stringify(report, null, 2));
if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
