#!/usr/bin/env node
// The whole pipeline at the full corpora's task count, on tiny files: a local corpus laid out
// as SlimPajama's hub listing (train/chunk1..10, 59,150 example_train_*.jsonl.zst files by
// default, a few short documents each, some shared or near-shared so every dedup stage has
// work), run by `data:prepare` with the local executor: 14,788 signatures and pack tasks, band
// merges over 14,788 files each, one cluster and one finalize task over all of them. What it
// measures is what grows with the number of tasks and files, not with bytes: planning, the
// per-task costs, the bounded-fan-in merges, finalize's pooling, and the peak memory of each.
//
//   node tools/bench/data/task-scale.mjs [--files 59150] [--workers 2] [--json out.json]
// Needs pnpm build. The corpus and output go under $TMPDIR and are deleted at the end.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runHeader } from "./report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: {
    files: { type: "string" },
    workers: { type: "string" },
    json: { type: "string" },
  },
});
const fileCount = Number(values.files ?? 59150);
const workers = values.workers ?? "2";
const { compress } = createRequire(join(root, "packages/data/package.json"))("zstd-napi");

/** n written in letters: the dedup's normalisation drops digits, letters keep texts apart. */
const word = (/** @type {number} */ n) => {
  let s = "";
  for (let x = n + 1; x > 0; x = Math.floor((x - 1) / 26))
    s = String.fromCharCode(97 + ((x - 1) % 26)) + s;
  return s;
};

const scratch = mkdtempSync(join(tmpdir(), "task-scale-"));
try {
  const corpus = join(scratch, "slimpajama");
  const t0 = performance.now();
  let n = 0;
  for (let c = 1; c <= 10; c++) {
    const dir = join(corpus, "train", `chunk${c}`);
    mkdirSync(dir, { recursive: true });
    const inChunk = Math.floor(fileCount / 10) + (c <= fileCount % 10 ? 1 : 0);
    for (let i = 0; i < inChunk; i++, n++) {
      const lines = [];
      for (let d = 0; d < 3; d++) {
        const id = 3 * n + d;
        // 1 in 50 a copy of one of 20 boilerplate texts (exact duplicates), 1 in 50 that text
        // with one word changed (near duplicates), 1 in 40 a GitHub document (filtered)
        const kind = id % 50;
        const base = `notice ${word(Math.floor(id / 50) % 20)} ${"terms of use apply to this page and its content ".repeat(4)}`;
        const text =
          kind === 0
            ? base
            : kind === 1
              ? `${base} ${word(id)}`
              : Array.from({ length: 40 }, (_, k) => word(id * 41 + k)).join(" ");
        const set = id % 40 === 7 ? "RedPajamaGithub" : "RedPajamaCommonCrawl";
        lines.push(JSON.stringify({ text, meta: { redpajama_set_name: set } }));
      }
      writeFileSync(
        join(dir, `example_train_${i}.jsonl.zst`),
        compress(Buffer.from(`${lines.join("\n")}\n`)),
      );
    }
  }
  const genSeconds = (performance.now() - t0) / 1000;
  const config = join(scratch, "config.json");
  const output = join(scratch, "out");
  writeFileSync(
    config,
    JSON.stringify({
      output,
      sources: [{ name: "slimpajama", local: corpus, subsets: ["train"] }],
      tokenizer: "bytes",
    }),
  );
  console.error(`corpus: ${n} files in ${genSeconds.toFixed(1)} s; running data:prepare`);
  const t1 = performance.now();
  const r = spawnSync(
    "/usr/bin/time",
    [
      "-f",
      "%M %U %S",
      process.execPath,
      join(root, "packages/data/dist/cli/prepare.js"),
      "--config",
      config,
      "--workers",
      workers,
    ],
    { encoding: "utf8", maxBuffer: 1 << 28 },
  );
  const wall = (performance.now() - t1) / 1000;
  if (r.status !== 0) throw new Error(`data:prepare failed:\n${r.stderr.slice(-3000)}`);
  const [maxRssKB, user, sys] = (r.stderr.trim().split("\n").at(-1) ?? "").split(" ").map(Number);
  const stats = JSON.parse(readFileSync(join(output, "stats.json"), "utf8"));
  const manifest = JSON.parse(readFileSync(join(output, "slimpajama", "manifest.json"), "utf8"));
  const report = {
    ...runHeader(),
    command: `node tools/bench/data/task-scale.mjs --files ${fileCount} --workers ${workers}`,
    inputFiles: n,
    "data:prepare wall seconds": +wall.toFixed(1),
    "CPU seconds (user + sys, all processes)": +((user ?? 0) + (sys ?? 0)).toFixed(1),
    "peak RSS of one process, MB": +((maxRssKB ?? 0) / 1024).toFixed(0),
    "summary table (as data:prepare printed it)": `${r.stdout}\n${r.stderr}`
      .split("\n")
      .filter((l) =>
        /^(stage|signatures|buckets|cluster|pack|finalize|source|slimpajama)\s/.test(l),
      ),
    documents: manifest.stats,
    "seconds by stage and part, all tasks (stats.json timings)": Object.fromEntries(
      Object.entries(stats.timings ?? {}).map(([k, v]) => [k, +Number(v).toFixed(2)]),
    ),
  };
  console.log(JSON.stringify(report, null, 2));
  if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
