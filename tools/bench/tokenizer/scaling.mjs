// Thread scaling of encodeBatch: alternates 1, 2, ... N workers over the same documents for
// several rounds in one process and reports the best and median wall-clock throughput of each.
// On a shared machine the best-of-rounds figure approximates an uncontended run; the load
// average before and after is printed so the reader can judge.
//
//   node tools/bench/tokenizer/bench.mjs ...   (writes the corpus to /tmp first), then
//   node tools/bench/tokenizer/scaling.mjs [--rounds 6] [--max-threads <cores>]
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { loadPackages } from "./load.mjs";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "6" },
    "max-threads": { type: "string", default: String(availableParallelism()) },
    corpus: { type: "string", default: "/tmp/tinyllama-tokenizer-bench-corpus.json" },
  },
});
const P = await loadPackages();
/** @type {string[]} */
const texts = JSON.parse(readFileSync(values.corpus, "utf8"));
const bytes = texts.reduce((s, t) => s + Buffer.byteLength(t), 0);
const tok = await P.LlamaTokenizer.load();
const counts = [];
for (let n = 1; n <= Number(values["max-threads"]); n *= 2) counts.push(n);
/** @type {Map<number, number[]>} */
const rates = new Map(counts.map((n) => [n, []]));
console.log(
  `scaling: ${texts.length} documents, ${(bytes / 1e6).toFixed(2)} MB; load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
for (const n of counts) await tok.encodeBatchToInt32Arrays(texts.slice(0, 50), { threads: n }); // start workers
for (let r = 0; r < Number(values.rounds); r++) {
  for (const n of counts) {
    const t0 = performance.now();
    await tok.encodeBatchToInt32Arrays(texts, { threads: n });
    const rate = bytes / 1e6 / ((performance.now() - t0) / 1000);
    rates.get(n)?.push(rate);
    console.log(`round ${r + 1}: ${n} worker(s) ${rate.toFixed(2)} MB/s`);
  }
}
await tok.close();
const base = Math.max(...(rates.get(1) ?? [0]));
for (const [n, rs] of rates) {
  const sorted = [...rs].sort((a, b) => a - b);
  const best = sorted[sorted.length - 1] ?? 0;
  console.log(
    `${n} worker(s): best ${best.toFixed(2)} MB/s (${(best / base).toFixed(2)}x of 1), median ${(sorted[sorted.length >> 1] ?? 0).toFixed(2)} MB/s`,
  );
}
console.log(
  `load average after: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
