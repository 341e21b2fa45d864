// Tokenizer throughput: this package vs Hugging Face `tokenizers` on the same documents, in
// one run. Each measurement runs in its own child process (so RAYON_NUM_THREADS applies to
// tokenizers and memory is measured cleanly); the suite repeats --runs times to show noise.
// Reports MB/s (UTF-8 input) and tokens/s, by wall clock and per CPU-second of the process,
// resident memory per worker, and time on 1 MB lines without spaces.
//
//   npx tsc -p packages/tokenizer/tsconfig.build.json
//   node tools/bench/tokenizer/bench.mjs [--scale 0.35] [--runs 3] [--out tools/bench/tokenizer/results.json]
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, cpus } from "node:os";
import { parseArgs } from "node:util";
import { buildCorpus, summarize } from "./corpus.mjs";
import { loadPackages, pkgDir } from "./load.mjs";

const { values } = parseArgs({
  options: {
    scale: { type: "string", default: "0.35" },
    runs: { type: "string", default: "3" },
    out: { type: "string", default: new URL("./results.json", import.meta.url).pathname },
    child: { type: "string" },
    threads: { type: "string", default: "1" },
    corpus: { type: "string" },
  },
});

const CORPUS_FILE = "/tmp/tinyllama-tokenizer-bench-corpus.json";

/**
 * @template T
 * @param {() => T} fn
 * @returns {Promise<{ result: Awaited<T>, wall: number, cpu: number }>}
 */
function measure(fn) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = fn();
  return Promise.resolve(result).then((r) => {
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(cpu0);
    return { result: r, wall, cpu: (c.user + c.system) / 1e6 };
  });
}

/**
 * One measurement in this (child) process; prints a JSON line. The warm-up pass (JIT, worker
 * start) runs on one tokenizer instance and the timed pass on a fresh one, so no word cache
 * (ours, or the one in `tokenizers`) starts the timed pass already holding these documents.
 * @param {string} kind
 * @param {number} threads
 */
async function child(kind, threads) {
  const P = await loadPackages();
  /** @type {string[]} */
  const texts = JSON.parse(readFileSync(String(values.corpus), "utf8"));
  const bytes = texts.reduce((s, t) => s + Buffer.byteLength(t), 0);
  const rss0 = process.memoryUsage().rss;
  const bundled = await P.LlamaTokenizer.load();
  const json = P.toHuggingFaceTokenizerJson(bundled.model);
  const warmText = P.variedTexts({
    seed: 999,
    count: 1500,
    pieces: bundled.model.pieces,
    maxLength: 20_000,
  });
  /** @returns {Promise<{ run: () => number | Promise<number>, close: () => Promise<void> }>} */
  const instance = async () => {
    if (kind.startsWith("ours")) {
      const tok = await P.LlamaTokenizer.load();
      const close = () => tok.close();
      if (kind === "ours-encode") {
        return {
          run: () => texts.reduce((n, t) => n + tok.encodeToInt32Array(t).length, 0),
          close,
        };
      }
      // Start the workers and warm their JIT before the clock starts, on generated text that is
      // not the corpus (each worker is a fresh V8 isolate).
      await tok.encodeBatchToInt32Arrays(warmText, { threads });
      const run = async () =>
        (await tok.encodeBatchToInt32Arrays(texts, { threads })).reduce(
          (/** @type {number} */ n, /** @type {Int32Array} */ ids) => n + ids.length,
          0,
        );
      return { run, close };
    }
    const ref = P.hf.Tokenizer.fromString(json);
    const close = async () => {};
    if (kind === "hf-encode") {
      const run = async () => {
        let n = 0;
        for (const t of texts) n += (await ref.encode(t)).getIds().length;
        return n;
      };
      return { run, close };
    }
    const run = async () => {
      let n = 0;
      for (let i = 0; i < texts.length; i += 512) {
        for (const e of await ref.encodeBatch(texts.slice(i, i + 512))) n += e.getIds().length;
      }
      return n;
    };
    return { run, close };
  };
  const warm = await instance();
  await warm.run();
  await warm.close();
  const timed = await instance();
  const rssLoaded = process.memoryUsage().rss;
  const m = await measure(timed.run);
  const rss1 = process.memoryUsage().rss;
  await timed.close();
  console.log(
    JSON.stringify({
      kind,
      threads,
      bytes,
      tokens: m.result,
      wall: m.wall,
      cpu: m.cpu,
      rssLoadedMB: (rssLoaded - rss0) / 1e6,
      rssRunMB: (rss1 - rssLoaded) / 1e6,
      rssMB: rss1 / 1e6,
    }),
  );
}

/** Time for lines without spaces of growing length: near-linear means ~constant MB/s. */
async function longLines() {
  const P = await loadPackages();
  const tok = await P.LlamaTokenizer.load();
  const ref = P.hf.Tokenizer.fromString(P.toHuggingFaceTokenizerJson(tok.model));
  // Chinese prose with everything but CJK characters and punctuation removed, repeated to 1M.
  const zhText = /** @type {string[]} */ (JSON.parse(readFileSync(String(values.corpus), "utf8")))
    .filter((t) => /[\u4e00-\u9fff]{20}/.test(t))
    .join("")
    .replace(/[^\u3000-\u9fff\uff00-\uffef]+/g, "");
  const zh = zhText.repeat(Math.ceil(1_000_000 / Math.max(1, zhText.length)));
  const rand = P.rng(9);
  const b64 = Buffer.from(Array.from({ length: 800_000 }, () => Math.floor(rand() * 256))).toString(
    "base64",
  );
  // Code with all whitespace removed (TypeScript's own compiler source, always installed).
  const tsPath = createRequire(`${pkgDir}package.json`).resolve("typescript/lib/typescript.js");
  const minified = readFileSync(tsPath, "utf8").replace(/\s+/g, "");
  const rows = [];
  /** @type {Array<[string, string]>} */
  const lines = [
    ["chinese", zh],
    ["base64", b64],
    ["minified-js", minified],
  ];
  for (const [name, source] of lines) {
    for (const chars of [250_000, 500_000, 1_000_000]) {
      const line = source.slice(0, chars);
      if (line.length < chars) continue;
      const mb = Buffer.byteLength(line) / 1e6;
      tok.encodeToInt32Array(line.slice(0, 10_000));
      const ours = await measure(() => tok.encodeToInt32Array(line));
      const hf = await measure(() => ref.encode(line));
      rows.push({
        line: name,
        chars,
        MB: +mb.toFixed(2),
        oursSeconds: +ours.wall.toFixed(3),
        hfSeconds: +hf.wall.toFixed(3),
      });
    }
  }
  console.log(JSON.stringify({ kind: "long-lines", rows }));
  await tok.close();
}

/**
 * Resident memory added per worker: idle after start, and after encoding the corpus. Run with
 * --expose-gc so garbage is collected before each reading; one fresh tokenizer per count.
 */
async function memory() {
  const P = await loadPackages();
  /** @type {string[]} */
  const texts = JSON.parse(readFileSync(String(values.corpus), "utf8"));
  const gc = /** @type {{ gc?: () => void }} */ (globalThis).gc ?? (() => {});
  const rss = () => {
    gc();
    return process.memoryUsage().rss;
  };
  const rows = [];
  for (const threads of [1, 2, 4]) {
    const tok = await P.LlamaTokenizer.load();
    const rss0 = rss();
    await tok.encodeBatch(["warm up"], { threads });
    const rss1 = rss();
    const ids = await tok.encodeBatchToInt32Arrays(texts, { threads });
    const rss2 = rss();
    await tok.close();
    rows.push({
      threads,
      "idle MB/worker": +((rss1 - rss0) / 1e6 / threads).toFixed(1),
      "after corpus MB/worker": +((rss2 - rss0) / 1e6 / threads).toFixed(1),
      "ids held MB": +(
        ids.reduce((/** @type {number} */ s, /** @type {Int32Array} */ a) => s + a.byteLength, 0) /
        1e6
      ).toFixed(1),
    });
  }
  console.log(JSON.stringify({ kind: "memory", rows }));
}

if (values.child) {
  if (values.child === "long-lines") await longLines();
  else if (values.child === "memory") await memory();
  else await child(values.child, Number(values.threads));
  process.exit(0);
}

const P = await loadPackages();
const bundled = await P.LlamaTokenizer.load();
const docs = buildCorpus({
  scale: Number(values.scale),
  variedTexts: P.variedTexts,
  rng: P.rng,
  pieces: bundled.model.pieces,
});
writeFileSync(CORPUS_FILE, JSON.stringify(docs.map((d) => d.text)));
const corpusBytes = docs.reduce((s, d) => s + Buffer.byteLength(d.text), 0);
console.log(
  `corpus: ${docs.length} documents, ${(corpusBytes / 1e6).toFixed(2)} MB (${CORPUS_FILE})`,
);
console.table(summarize(docs));

const cores = availableParallelism();
/** @type {Array<[string, number, Record<string, string>]>} */
const plan = [
  ["ours-encode", 1, {}],
  ["ours-batch", 1, {}],
  ["ours-batch", cores, {}],
  ["hf-encode", 1, { RAYON_NUM_THREADS: "1", UV_THREADPOOL_SIZE: "1" }],
  ["hf-batch", 1, { RAYON_NUM_THREADS: "1", UV_THREADPOOL_SIZE: "1" }],
  ["hf-batch", cores, { RAYON_NUM_THREADS: String(cores) }],
];
const script = new URL(import.meta.url).pathname;
/** @type {any[]} */
const samples = [];
const runs = Number(values.runs);
for (let r = 0; r < runs; r++) {
  for (const [kind, threads, env] of plan) {
    const out = execFileSync(
      process.execPath,
      [script, "--child", kind, "--threads", String(threads), "--corpus", CORPUS_FILE],
      {
        env: { ...process.env, ...env },
        encoding: "utf8",
        maxBuffer: 1 << 26,
      },
    );
    const s = JSON.parse(out.trim().split("\n").pop() ?? "{}");
    samples.push({ run: r, ...s });
    console.log(
      `run ${r + 1}/${runs} ${kind.padEnd(12)} threads ${threads}: ${(s.bytes / 1e6 / s.wall).toFixed(2)} MB/s wall, ` +
        `${(s.bytes / 1e6 / s.cpu).toFixed(2)} MB per CPU-s, ${(s.tokens / s.wall / 1e6).toFixed(2)} M tokens/s, rss ${s.rssMB.toFixed(0)} MB`,
    );
  }
}
const long = JSON.parse(
  execFileSync(process.execPath, [script, "--child", "long-lines", "--corpus", CORPUS_FILE], {
    encoding: "utf8",
  })
    .trim()
    .split("\n")
    .pop() ?? "{}",
);
console.table(long.rows);
const mem = JSON.parse(
  execFileSync(
    process.execPath,
    ["--expose-gc", script, "--child", "memory", "--corpus", CORPUS_FILE],
    {
      encoding: "utf8",
    },
  )
    .trim()
    .split("\n")
    .pop() ?? "{}",
);
console.table(mem.rows);

/** @param {number[]} xs */
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
const summary = plan.map(([kind, threads]) => {
  const ss = samples.filter((s) => s.kind === kind && s.threads === threads);
  const mbs = ss.map((s) => s.bytes / 1e6 / s.wall);
  const perCpu = ss.map((s) => s.bytes / 1e6 / s.cpu);
  return {
    kind,
    threads,
    "MB/s median": +median(mbs).toFixed(2),
    "MB/s min": +Math.min(...mbs).toFixed(2),
    "MB/s max": +Math.max(...mbs).toFixed(2),
    "MB per CPU-s": +median(perCpu).toFixed(2),
    "Mtok/s": +(median(ss.map((s) => s.tokens / s.wall)) / 1e6).toFixed(2),
    "rss MB": +median(ss.map((s) => s.rssMB)).toFixed(0),
    "rss added by run MB": +median(ss.map((s) => s.rssRunMB)).toFixed(0),
  };
});
console.table(summary);
/** @param {string} kind @param {number} threads */
const get = (kind, threads) => {
  const found = summary.find((s) => s.kind === kind && s.threads === threads);
  if (!found) throw new Error(`no ${kind} x${threads} measurement`);
  return found;
};
const ratioSingle = get("ours-encode", 1)["MB per CPU-s"] / get("hf-batch", 1)["MB per CPU-s"];
const scaling = get("ours-batch", cores)["MB/s median"] / get("ours-batch", 1)["MB/s median"];
console.log(
  `per core: ${ratioSingle.toFixed(2)}x Hugging Face tokenizers (best single-thread mode); ` +
    `thread scaling 1 -> ${cores}: ${scaling.toFixed(2)}x`,
);
writeFileSync(
  values.out,
  `${JSON.stringify({ date: new Date().toISOString(), cpu: cpus()[0]?.model, cores, corpus: summarize(docs), corpusMB: corpusBytes / 1e6, summary, samples, longLines: long.rows, memory: mem.rows, ratioSingle, scaling }, null, 2)}\n`,
);
console.log(`wrote ${values.out}`);
await bundled.close();
