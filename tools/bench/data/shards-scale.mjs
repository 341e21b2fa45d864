#!/usr/bin/env node
// ShardSet at the full corpora's file counts: SlimPajama packs into about 300,000 LITPKDS files
// of 1024 blocks, and the trainer reads blocks in a permutation over all of them. On synthetic
// shard directories of --files files (2 blocks of 4 tokens each, so the files are tiny and the
// file count is what is measured), each in its own child process for this build and, with
// --baseline, another build of the data package: seconds to open the set (manifest + the check
// of every file), seconds to read every block in a scattered order, the descriptors open at the
// end, peak RSS, and a checksum of the tokens read (both builds must agree where both finish).
//
//   node tools/bench/data/shards-scale.mjs [--baseline <packages/data/dist of another build>]
//     [--files 2000,30000] [--json out.json]
// Needs pnpm build. The files go under $TMPDIR and are deleted at the end.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { runHeader } from "./report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const { values } = parseArgs({
  options: {
    baseline: { type: "string" },
    files: { type: "string" },
    json: { type: "string" },
    child: { type: "boolean" },
    dist: { type: "string" },
    dir: { type: "string" },
  },
});
const BLOCK = 4;
const BLOCKS_PER_FILE = 2;

if (values.child) {
  const { ShardSet } = await import(pathToFileURL(join(values.dist ?? "", "shards/index.js")).href);
  const t0 = performance.now();
  const set = await ShardSet.open(values.dir);
  const t1 = performance.now();
  const out = new Uint16Array(BLOCK);
  let h = 0x811c9dc5;
  // a scattered order over every block, as the trainer's permutation reads them
  const n = set.numBlocks;
  const stride = 1_000_003 % n || 1;
  for (let i = 0, g = 0; i < n; i++, g = (g + stride) % n) {
    set.readGlobalBlock(g, out);
    for (const t of out) h = Math.imul(h ^ t, 0x01000193);
  }
  const t2 = performance.now();
  const openFds = readdirSync("/proc/self/fd").length;
  set.close();
  console.log(
    JSON.stringify({
      openSeconds: (t1 - t0) / 1000,
      readSeconds: (t2 - t1) / 1000,
      fdsOpenAfterReads: openFds,
      maxRssMB: process.resourceUsage().maxRSS / 1024,
      checksum: (h >>> 0).toString(16),
    }),
  );
  process.exit(0);
}

const dist = join(root, "packages/data/dist");
const builds = { current: dist, ...(values.baseline ? { baseline: values.baseline } : {}) };
const { encodeLitpkdsHeader, writeManifest, MANIFEST_FORMAT } = await import(
  pathToFileURL(join(dist, "shards/index.js")).href
);
const scratch = mkdtempSync(join(tmpdir(), "shards-scale-"));
/** @type {Record<string, unknown>[]} */
const rows = [];
try {
  for (const count of (values.files ?? "2000,30000").split(",").map(Number)) {
    const dir = join(scratch, `set-${count}`);
    const header = encodeLitpkdsHeader(BLOCK * BLOCKS_PER_FILE);
    const files = [];
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < count; f++) {
      const tokens = Uint16Array.from(
        { length: BLOCK * BLOCKS_PER_FILE },
        (_, i) => (f * 7 + i) % 65536,
      );
      const name = `train_synthetic_${String(f).padStart(10, "0")}.bin`;
      writeFileSync(join(dir, name), Buffer.concat([header, Buffer.from(tokens.buffer)]));
      files.push({ name, tokens: tokens.length, blocks: BLOCKS_PER_FILE, sha256: "" });
    }
    const tokens = count * BLOCK * BLOCKS_PER_FILE;
    await writeManifest(dir, {
      format: MANIFEST_FORMAT,
      source: "synthetic",
      blockSize: BLOCK,
      chunkTokens: BLOCK * BLOCKS_PER_FILE,
      dtype: "uint16",
      tokenizer: { name: "synthetic", vocabSize: 65536, eosId: 0, hash: "none" },
      eosAppended: true,
      splits: {
        train: { files, documents: count, tokens, blocks: tokens / BLOCK, droppedTailTokens: 0 },
      },
      stats: {
        documentsRead: count,
        bytesRead: 0,
        removed: {},
        badRecords: 0,
        documentsKept: count,
      },
      config: {},
      createdAt: new Date(0).toISOString(),
    });
    /** @type {Record<string, unknown>} */
    const row = { files: count };
    for (const [name, d] of Object.entries(builds)) {
      const r = spawnSync(
        process.execPath,
        [fileURLToPath(import.meta.url), "--child", "--dist", d, "--dir", dir],
        { encoding: "utf8" },
      );
      row[name] =
        r.status === 0
          ? JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}")
          : { failed: (r.stderr.split("\n").find((l) => /Error/.test(l)) ?? r.stderr).trim() };
      console.error(`${count} files: ${name} ${JSON.stringify(row[name])}`);
    }
    rows.push(row);
    rmSync(dir, { recursive: true, force: true });
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
const report = { ...runHeader(), command: process.argv.slice(1).join(" "), rows };
console.log(JSON.stringify(report, null, 2));
if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
