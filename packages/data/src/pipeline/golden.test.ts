// Pins the exact bytes `pnpm data:prepare` produces on the bundled sample with the real Llama 2
// tokenizer: the sha256 of every shard, the MinHash signature files (band keys of every
// document) and the dedup counts; and the shards of `--no-dedup`, whose pack stage reads and
// tokenizes on its own path. Speed work on read/dedup/tokenize/pack must leave all of
// them unchanged; a deliberate format or algorithm change updates these values in the same
// commit, with the reason.
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runLocal } from "../executors/local.js";
import { ProgressPrinter } from "../executors/progress.js";
import { resolveConfig, sampleConfig } from "./config.js";
import { loadOrMakePlan } from "./plan.js";
import { loadPipelineTokenizer } from "./tokenizer.js";

let out: string;
let workDir: string;
const quiet = new ProgressPrinter({
  write: () => true,
  isTTY: false,
} as unknown as NodeJS.WriteStream);
const sources = ["slimpajama", "starcoder", "proof-pile-2", "skypile"];

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), "golden-"));
  const config = resolveConfig(sampleConfig(join(out, "data")), out);
  const { plan } = await loadOrMakePlan(config);
  workDir = plan.workDir;
  const tokenizer = await loadPipelineTokenizer("llama2");
  await runLocal(plan, { inProcess: true, tokenizer, printer: quiet });
  const base = sampleConfig(join(out, "nodedup"));
  const noDedup = resolveConfig({ ...base, dedup: { ...base.dedup, enabled: false } }, out);
  await runLocal((await loadOrMakePlan(noDedup)).plan, {
    inProcess: true,
    tokenizer,
    printer: quiet,
  });
}, 120_000);
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex").slice(0, 16);

/** One sha256 over every file under `dir` (names and bytes, in name order). */
async function treeHash(dir: string): Promise<string> {
  const h = createHash("sha256");
  const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
  for (const f of files) h.update(`${f.slice(dir.length)}\0`).update(await readFile(f));
  return h.digest("hex").slice(0, 16);
}

/** The sha256 of every shard under `dir`, by "source/file". */
async function shardHashes(dir: string): Promise<Record<string, string>> {
  const got: Record<string, string> = {};
  for (const s of sources) {
    for (const f of (await readdir(join(dir, s))).sort()) {
      if (f.endsWith(".bin")) got[`${s}/${f}`] = sha(await readFile(join(dir, s, f)));
    }
  }
  return got;
}

describe("the bundled sample with the Llama 2 tokenizer", () => {
  it("gives the pinned shards (sha256), byte for byte", async () => {
    expect(await shardHashes(join(out, "data"))).toEqual(PINNED_SHARDS);
  });

  it("gives the pinned shards with --no-dedup too", async () => {
    expect(await shardHashes(join(out, "nodedup"))).toEqual(PINNED_NO_DEDUP_SHARDS);
  });

  it("gives the pinned MinHash signature files and dedup counts", async () => {
    expect(await treeHash(join(workDir, "signatures"))).toBe(PINNED_SIGNATURES);
    const removed: Record<string, Record<string, number>> = {};
    for (const s of sources) {
      const m = JSON.parse(await readFile(join(out, "data", s, "manifest.json"), "utf8"));
      removed[s] = m.stats.removed;
    }
    expect(removed).toEqual(PINNED_REMOVED);
  });
});

const PINNED_SHARDS: Record<string, string> = {
  "proof-pile-2/train_proof-pile-2_pool_0000000000.bin": "b946f8820130a789",
  "proof-pile-2/train_proof-pile-2_pool_0000000001.bin": "4fad64629c3054b1",
  "proof-pile-2/train_proof-pile-2_t00006_0000000000.bin": "03e8eaef0d84b9f0",
  "proof-pile-2/train_proof-pile-2_t00006_0000000001.bin": "d688d9405fd4d83a",
  "proof-pile-2/validation_proof-pile-2_pool_0000000000.bin": "073f1ad18b3b8c88",
  "skypile/train_skypile_pool_0000000000.bin": "47d8c5d7ce8feb5f",
  "skypile/train_skypile_t00009_0000000000.bin": "0c128c60278330d6",
  "skypile/train_skypile_t00010_0000000000.bin": "e0c1db2f74041542",
  "skypile/validation_skypile_pool_0000000000.bin": "cb3a5c66bb65ac71",
  "slimpajama/train_slimpajama_pool_0000000000.bin": "998879bf2e4033df",
  "slimpajama/train_slimpajama_pool_0000000001.bin": "72f4f7dc70eaf3ff",
  "slimpajama/train_slimpajama_pool_0000000002.bin": "5c3152f3a67efe58",
  "slimpajama/validation_slimpajama_pool_0000000000.bin": "6dbc3763256c6e2c",
  "starcoder/train_starcoder_pool_0000000000.bin": "0c2ef68b31ca517f",
  "starcoder/train_starcoder_pool_0000000001.bin": "f918a91317dff2ce",
  "starcoder/validation_starcoder_pool_0000000000.bin": "0b46b85634e5baa1",
};
const PINNED_SIGNATURES = "2cf3e4b1a1d85776";
const PINNED_REMOVED: Record<string, Record<string, number>> = {
  slimpajama: { RedPajamaGithub: 12, "exact-duplicate": 18, "near-duplicate": 17 },
  starcoder: { "exact-duplicate": 4, "near-duplicate": 3 },
  "proof-pile-2": { "exact-duplicate": 9, "near-duplicate": 13 },
  skypile: { "exact-duplicate": 15, "near-duplicate": 15 },
};
// Where the dedup run removed nothing (skypile's t00009 and t00010 shards, starcoder's first pool
// shard) both paths give the same bytes, as PINNED_SHARDS shows.
const PINNED_NO_DEDUP_SHARDS: Record<string, string> = {
  "proof-pile-2/train_proof-pile-2_pool_0000000000.bin": "dad2db05a265234b",
  "proof-pile-2/train_proof-pile-2_pool_0000000001.bin": "e35d4d7a13bd0b2c",
  "proof-pile-2/train_proof-pile-2_t00006_0000000000.bin": "94ad80fe663d07f4",
  "proof-pile-2/train_proof-pile-2_t00006_0000000001.bin": "c56f2a06b121dca0",
  "proof-pile-2/validation_proof-pile-2_pool_0000000000.bin": "ea6132fb9a7c3147",
  "skypile/train_skypile_pool_0000000000.bin": "00bfd96924140e54",
  "skypile/train_skypile_pool_0000000001.bin": "51a00ea6b4a3624b",
  "skypile/train_skypile_t00009_0000000000.bin": "0c128c60278330d6",
  "skypile/train_skypile_t00010_0000000000.bin": "e0c1db2f74041542",
  "skypile/validation_skypile_pool_0000000000.bin": "1393cd64f9c090d7",
  "slimpajama/train_slimpajama_pool_0000000000.bin": "a6034195157ccdb1",
  "slimpajama/train_slimpajama_pool_0000000001.bin": "2d3d6533978abc2f",
  "slimpajama/train_slimpajama_pool_0000000002.bin": "fcdcd9e004c4be4c",
  "slimpajama/validation_slimpajama_pool_0000000000.bin": "9a1a00287575ee7d",
  "starcoder/train_starcoder_pool_0000000000.bin": "0c2ef68b31ca517f",
  "starcoder/train_starcoder_pool_0000000001.bin": "8cc12227ed7bd75e",
  "starcoder/train_starcoder_pool_0000000002.bin": "92347f6b42453c74",
  "starcoder/validation_starcoder_pool_0000000000.bin": "a0fa6e5ae798bdf9",
};
