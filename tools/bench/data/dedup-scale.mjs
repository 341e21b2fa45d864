#!/usr/bin/env node
// The dedup stages at the full corpora's scale, on synthetic signature and pair files: the
// buckets merge over many signatures tasks (SlimPajama alone makes 14,792 tasks at 4 files per
// task) and the cluster stage over many documents that have a duplicate. Each case runs in its
// own child process, for this build and, with --baseline, for another build of the data package
// (e.g. an older commit's packages/data/dist), alternated, reporting seconds, peak RSS and the
// result's checksum (the two builds must agree wherever both finish).
//
//   node tools/bench/data/dedup-scale.mjs [--baseline <packages/data/dist of another build>]
//     [--tasks 2000,20000] [--docs-per-task 200] [--cluster-docs 4e6,2e7] [--json out.json]
// Needs pnpm build. The files go under $TMPDIR and are deleted at the end.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { runHeader } from "./report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: {
    baseline: { type: "string" },
    tasks: { type: "string" },
    "docs-per-task": { type: "string" },
    "cluster-docs": { type: "string" },
    json: { type: "string" },
    child: { type: "string" },
    dist: { type: "string" },
    dir: { type: "string" },
  },
});

/** FNV-1a over a file's uint32 words, as a hex string. @param {Uint32Array} words */
function checksum(words) {
  let h = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) h = Math.imul(h ^ (words[i] ?? 0), 0x01000193);
  return (h >>> 0).toString(16);
}

if (values.child) {
  // child: --child merge|cluster --dist <dist> --dir <dir>
  const dist = values.dist ?? "";
  const dir = values.dir ?? "";
  const { readFileSync } = await import("node:fs");
  const t0 = performance.now();
  let result;
  if (values.child === "merge") {
    const files = JSON.parse(readFileSync(join(dir, "files.json"), "utf8"));
    // this build has merge.js; older ones export mergeBand from files.js
    const mod = await import(pathToFileURL(join(dist, "dedup/merge.js")).href).catch(
      () => import(pathToFileURL(join(dist, "dedup/files.js")).href),
    );
    const pairs = await mod.mergeBand(files, join(dir, "pairs.bin"));
    const words = new Uint32Array(new Uint8Array(readFileSync(join(dir, "pairs.bin"))).buffer);
    result = { pairs, checksum: checksum(words) };
  } else {
    const mod = await import(pathToFileURL(join(dist, "dedup/cluster.js")).href).catch(
      () => import(pathToFileURL(join(dist, "dedup/files.js")).href),
    );
    const lists = mod.clusterPairs([{ path: join(dir, "pairs.bin"), exact: false }]);
    let removed = 0;
    let h = 0;
    for (const task of [...lists.keys()].sort((a, b) => a - b)) {
      removed += lists.get(task).length / 2;
      h = Math.imul(h ^ task, 0x01000193) ^ Number.parseInt(checksum(lists.get(task)), 16);
    }
    result = { removed, checksum: (h >>> 0).toString(16) };
  }
  const seconds = (performance.now() - t0) / 1000;
  const maxRssMB = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ ...result, seconds, maxRssMB }));
  process.exit(0);
}

const dist = join(root, "packages/data/dist");
const { mulberry32 } = await import(pathToFileURL(join(dist, "dedup/minhash.js")).href);
/** Uniform [0, 1) from the data package's mulberry32. @param {number} seed */
const rng = (seed) => {
  const next = mulberry32(seed);
  return () => next() / 2 ** 32;
};
const builds = { current: dist, ...(values.baseline ? { baseline: values.baseline } : {}) };
const taskCounts = (values.tasks ?? "2000,20000").split(",").map(Number);
const docsPerTask = Number(values["docs-per-task"] ?? 200);
const clusterDocs = (values["cluster-docs"] ?? "4e6,2e7").split(",").map(Number);
const scratch = mkdtempSync(join(tmpdir(), "dedup-scale-"));

/** @param {"merge" | "cluster"} kind @param {string} dir */
function runBoth(kind, dir) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const [name, d] of Object.entries(builds)) {
    const r = spawnSync(
      process.execPath,
      [fileURLToPath(import.meta.url), "--child", kind, "--dist", d, "--dir", dir],
      { encoding: "utf8", maxBuffer: 1 << 24 },
    );
    if (r.status === 0) out[name] = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}");
    else {
      const err = r.stderr.split("\n").find((l) => /Error|EMFILE|RangeError/.test(l));
      out[name] = { failed: (err ?? r.stderr.slice(-300)).trim() };
    }
    console.error(`${kind} ${dir}: ${name} ${JSON.stringify(out[name])}`);
  }
  return out;
}

/** @type {{ merge: Record<string, unknown>[], cluster: Record<string, unknown>[] }} */
const results = { merge: [], cluster: [] };
const report = { ...runHeader(), command: process.argv.slice(1).join(" "), ...results };
try {
  for (const tasks of taskCounts) {
    // one band's signature files: docsPerTask sorted keys per task, ~1% of them shared
    const dir = join(scratch, `merge-${tasks}`);
    mkdirSync(dir, { recursive: true });
    const r = rng(tasks);
    const files = [];
    for (let t = 0; t < tasks; t++) {
      /** @type {[number, number, number][]} */
      const keys = [];
      for (let d = 0; d < docsPerTask; d++) {
        const shared = r() < 0.01;
        keys.push([shared ? 7 : (r() * 2 ** 32) >>> 0, shared ? (r() * 1000) >>> 0 : t, d]);
      }
      keys.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
      const path = join(dir, `task-${t}.bin`);
      writeFileSync(path, new Uint8Array(Uint32Array.from(keys.flat()).buffer));
      files.push({ task: t, path });
    }
    writeFileSync(join(dir, "files.json"), JSON.stringify(files));
    results.merge.push({ tasks, records: tasks * docsPerTask, ...runBoth("merge", dir) });
    rmSync(dir, { recursive: true, force: true });
  }
  for (const docs of clusterDocs) {
    // pairs chaining `docs` documents into components of 2-5, spread over 10,000 tasks
    const dir = join(scratch, `cluster-${docs}`);
    mkdirSync(dir, { recursive: true });
    const r = rng(docs);
    const recs = new Uint32Array(4 * docs);
    let n = 0;
    let head = [0, 0];
    let left = 0;
    for (let i = 0; i < docs; i++) {
      const doc = [(r() * 10000) >>> 0, i];
      if (left === 0) {
        head = doc;
        left = 1 + Math.floor(r() * 4);
        continue;
      }
      recs.set([head[0] ?? 0, head[1] ?? 0, doc[0] ?? 0, doc[1] ?? 0], 4 * n++);
      left--;
    }
    writeFileSync(join(dir, "pairs.bin"), new Uint8Array(recs.buffer, 0, 16 * n));
    results.cluster.push({ documents: docs, pairs: n, ...runBoth("cluster", dir) });
    rmSync(dir, { recursive: true, force: true });
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
console.log(JSON.stringify(report, null, 2));
if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
