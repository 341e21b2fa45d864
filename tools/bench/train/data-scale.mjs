#!/usr/bin/env node
// The trainer's token stream over a source with the full corpora's file count: SlimPajama packs
// into about 300,000 LITPKDS files of 1024 blocks, and the stream reads blocks in a permutation
// over all of them. On a synthetic shard directory of --files one-block files (the file count
// is what is measured, not bytes: 2.4 GB for 300,000), it times what a rank does before its
// first step (openSources: the manifest and every file's size and header; the stream's block
// order) and then per block read, and reports the descriptors open and the peak RSS.
//
//   node tools/bench/train/data-scale.mjs [--files 300000] [--reads 50000] [--json out.json]
// Needs pnpm build. The shards go under $TMPDIR and are deleted at the end.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { runHeader } from "../data/report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: { files: { type: "string" }, reads: { type: "string" }, json: { type: "string" } },
});
const fileCount = Number(values.files ?? 300000);
const reads = Number(values.reads ?? 50000);
const load = (/** @type {string} */ p) => import(pathToFileURL(join(root, p)).href);
const D = await load("packages/data/dist/index.js");
const M = await load("packages/data/dist/mixture/index.js");
const S = await load("packages/trainer/dist/data/sources.js");
const T = await load("packages/trainer/dist/data/stream.js");

const scratch = mkdtempSync(join(tmpdir(), "train-data-scale-"));
try {
  const dir = join(scratch, "slimpajama");
  mkdirSync(dir, { recursive: true });
  const header = D.encodeLitpkdsHeader(2049);
  const body = Buffer.alloc(2049 * 2);
  const files = [];
  const tGen = performance.now();
  for (let f = 0; f < fileCount; f++) {
    body.writeUInt16LE(f % 32000, 0); // each block starts with its file's number
    const name = `train_slimpajama_${String(f).padStart(10, "0")}.bin`;
    writeFileSync(join(dir, name), Buffer.concat([header, body]));
    files.push({ name, tokens: 2049, blocks: 1, sha256: "" });
  }
  await D.writeManifest(dir, {
    format: D.MANIFEST_FORMAT,
    source: "slimpajama",
    blockSize: 2049,
    chunkTokens: 2049,
    dtype: "uint16",
    tokenizer: { name: "synthetic", vocabSize: 32000, eosId: 2, hash: "none" },
    eosAppended: true,
    splits: {
      train: {
        files,
        documents: fileCount,
        tokens: fileCount * 2049,
        blocks: fileCount,
        droppedTailTokens: 0,
      },
    },
    stats: { documentsRead: 0, bytesRead: 0, removed: {}, badRecords: 0, documentsKept: 0 },
    config: {},
    createdAt: new Date(0).toISOString(),
  });
  console.error(
    `${fileCount} files written in ${((performance.now() - tGen) / 1000).toFixed(0)} s`,
  );

  const t0 = performance.now();
  const sources = await S.openSources(scratch, ["slimpajama"], 32000, null);
  const t1 = performance.now();
  const stream = new T.TokenStream(sources, {
    schedule: M.preset("v1.1-basic"),
    seed: 42,
    seqLen: 2048,
    vocabSize: 32000,
  });
  const t2 = performance.now();
  const ids = new Int32Array(2048);
  const targets = new Int32Array(2048);
  const seen = new Set();
  for (let i = 0; i < reads; i++) {
    stream.next(ids, targets, 0);
    seen.add(ids[0]);
  }
  const t3 = performance.now();
  const report = {
    ...runHeader(),
    command: `node tools/bench/train/data-scale.mjs --files ${fileCount} --reads ${reads}`,
    files: fileCount,
    "openSources seconds (manifest + every file's size and header)": +((t1 - t0) / 1000).toFixed(2),
    "TokenStream construction seconds": +((t2 - t1) / 1000).toFixed(3),
    "blocks read": reads,
    "microseconds per block read": +(((t3 - t2) * 1000) / reads).toFixed(1),
    "distinct first tokens seen (files touched, mod 32000)": seen.size,
    "descriptors open after the reads": readdirSync("/proc/self/fd").length,
    "peak RSS MB": +(process.resourceUsage().maxRSS / 1024).toFixed(0),
  };
  for (const s of sources.values()) s.train.close();
  console.log(JSON.stringify(report, null, 2));
  if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
