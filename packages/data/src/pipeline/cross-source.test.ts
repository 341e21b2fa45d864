// Dedup runs across all sources of a run: a document of one source is removed when a copy is
// kept in another. Each manifest must say so (duplicates per other source) and record the
// whole run (every source, in order), since which copy is kept follows the sources' order.
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compress } from "zstd-napi";
import { runLocal } from "../executors/local.js";
import { ProgressPrinter } from "../executors/progress.js";
import { ShardSet } from "../shards/shard-set.js";
import { type PrepareConfig, resolveConfig } from "./config.js";
import { loadOrMakePlan } from "./plan.js";
import { summarize } from "./summary.js";
import { bytesTokenizer } from "./tokenizer.js";

let dir: string;
const quiet = new ProgressPrinter({
  write: () => true,
  isTTY: false,
} as unknown as NodeJS.WriteStream);
/** 60 pseudo-random words: unrelated documents share no 5-gram. */
const text = (topic: string, i: number) =>
  Array.from({ length: 60 }, (_, k) =>
    createHash("sha1").update(`${topic} ${i} ${k}`).digest("hex").slice(0, 8),
  ).join(" ");
const SHARED = text("shared", 0);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cross-source-"));
  // skypile: 6 documents of its own + one shared with proof-pile-2
  await mkdir(join(dir, "sky", "data"), { recursive: true });
  const sky = [...Array.from({ length: 6 }, (_, i) => text("sky", i)), SHARED];
  await writeFile(
    join(dir, "sky", "data", "2023-14_zh_head_0000.jsonl"),
    `${sky.map((t) => JSON.stringify({ text: t })).join("\n")}\n`,
  );
  // proof-pile-2: the shared document first, then 6 of its own
  await mkdir(join(dir, "pp", "arxiv", "train"), { recursive: true });
  const pp = [SHARED, ...Array.from({ length: 6 }, (_, i) => text("proof", i))];
  await writeFile(
    join(dir, "pp", "arxiv", "train", "a.jsonl.zst"),
    compress(Buffer.from(`${pp.map((t) => JSON.stringify({ text: t })).join("\n")}\n`)),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function prepare(output: string, order: string[]): Promise<PrepareConfig> {
  const local: Record<string, string> = {
    skypile: join(dir, "sky"),
    "proof-pile-2": join(dir, "pp"),
  };
  const config = resolveConfig(
    {
      output: join(dir, output),
      tokenizer: "bytes",
      blockSize: 16,
      chunkTokens: 256,
      validationFraction: 0,
      sources: order.map((name) => ({ name, local: local[name] as string })),
    },
    dir,
  );
  const { plan } = await loadOrMakePlan(config);
  await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
  return config;
}

const manifest = async (output: string, source: string) =>
  (await ShardSet.open(join(dir, output, source))).manifest;

describe("dedup across sources", () => {
  it("counts a source's duplicates kept in another source, per that source", async () => {
    const config = await prepare("a", ["skypile", "proof-pile-2"]);
    const sky = await manifest("a", "skypile");
    const pp = await manifest("a", "proof-pile-2");
    // the earlier source keeps the shared document; the later one loses its copy to it
    expect(sky.stats.removed).toEqual({});
    expect(sky.stats.duplicatesOfOtherSources).toEqual({});
    expect(pp.stats.removed).toEqual({ "exact-duplicate": 1 });
    expect(pp.stats.duplicatesOfOtherSources).toEqual({ skypile: { "exact-duplicate": 1 } });
    expect(pp.stats.documentsKept).toBe(6);
    // and the closing summary table says it
    const { plan } = await loadOrMakePlan(config);
    const table = (await summarize(plan, 0)).table.split("\n");
    expect(table[0]).toMatch(/near dup\s+dup of other src\s+bad\s+rows lost\s+bytes unreadable/);
    // (bad records, parquet rows lost and unreadable bytes are 0 before the 6 kept)
    expect(table.find((l) => l.startsWith("proof-pile-2"))).toMatch(
      /^proof-pile-2\s+7\s+\S+\s+0\s+1\s+0\s+1\s+0\s+0\s+0\s+6\b/,
    );
  });

  it("the kept copy follows the order of the sources, so the manifest records the whole run", async () => {
    await prepare("b", ["proof-pile-2", "skypile"]);
    const sky = await manifest("b", "skypile");
    const pp = await manifest("b", "proof-pile-2");
    expect(pp.stats.duplicatesOfOtherSources).toEqual({});
    expect(sky.stats.duplicatesOfOtherSources).toEqual({
      "proof-pile-2": { "exact-duplicate": 1 },
    });
    expect(sky.stats.documentsKept).toBe(6);
    for (const m of [sky, pp]) {
      // every source of the run, in order, in both the config and the run block
      const config = m.config as PrepareConfig;
      expect(config.sources.map((s) => s.name)).toEqual(["proof-pile-2", "skypile"]);
      expect(m.run?.sources).toEqual([
        { name: "proof-pile-2", local: join(dir, "pp") },
        { name: "skypile", local: join(dir, "sky") },
      ]);
    }
  });

  it("rerunning a manifest's config gives the same shards", async () => {
    const first = await manifest("b", "skypile");
    const config = first.config as PrepareConfig;
    await prepare(
      "c",
      config.sources.map((s) => s.name),
    );
    const again = await manifest("c", "skypile");
    expect(again.splits.train?.files.map((f) => f.sha256)).toEqual(
      first.splits.train?.files.map((f) => f.sha256),
    );
  });
});
