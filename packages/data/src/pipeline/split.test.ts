// Which documents go to validation: by a hash of the document id. With dedup on (the default)
// no text is in both splits, since of exact duplicates one copy survives the run; with
// --no-dedup the same text under two ids can land in both (the README says so). Hashing the
// text instead would change which documents are held out, and the golden --no-dedup shards.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runLocal } from "../executors/local.js";
import { ProgressPrinter } from "../executors/progress.js";
import { ShardSet } from "../shards/shard-set.js";
import { resolveConfig } from "./config.js";
import { loadOrMakePlan } from "./plan.js";
import { bytesTokenizer } from "./tokenizer.js";

let dir: string;
const quiet = new ProgressPrinter({
  write: () => true,
  isTTY: false,
} as unknown as NodeJS.WriteStream);
// 120 distinct documents, each in two files: the same text under two ids
const texts = Array.from(
  { length: 120 },
  (_, i) =>
    `document ${i}: ${Array.from({ length: 12 }, (_, w) => `w${(i * 131 + w * 17 + i * w * 13) % 997}`).join(" ")}`,
);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "split-"));
  const data = join(dir, "skypile", "data");
  await mkdir(data, { recursive: true });
  const body = `${texts.map((text) => JSON.stringify({ text })).join("\n")}\n`;
  await writeFile(join(data, "2023-01_zh_head_0000.jsonl"), body);
  await writeFile(join(data, "2023-01_zh_head_0001.jsonl"), body);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The complete documents of one split, decoded from the bytes tokenizer's ids. */
async function documents(out: string, split: string): Promise<Set<string>> {
  const set = await ShardSet.open(join(out, "skypile"), { split });
  const ids: number[] = [];
  for (let b = 0; b < set.numBlocks; b++) ids.push(...set.readGlobalBlock(b));
  set.close();
  const docs = new Set<string>();
  let cur: number[] = [];
  for (const id of ids) {
    if (id !== 2) cur.push(id - 3);
    else {
      docs.add(Buffer.from(cur).toString("utf8"));
      cur = [];
    }
  }
  return docs; // the unterminated rest (cut by the dropped partial block) is left out
}

async function prepare(name: string, dedup: boolean) {
  const out = join(dir, name);
  const cfg = resolveConfig(
    {
      output: out,
      tokenizer: "bytes",
      blockSize: 16,
      chunkTokens: 16 * 64,
      validationFraction: 0.3,
      dedup: { enabled: dedup },
      sources: [{ name: "skypile", local: join(dir, "skypile") }],
    },
    dir,
  );
  const { plan } = await loadOrMakePlan(cfg);
  await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
  return { train: await documents(out, "train"), validation: await documents(out, "validation") };
}

describe("train/validation split", () => {
  it("with dedup on, no text is in both splits", async () => {
    const { train, validation } = await prepare("dedup", true);
    expect(validation.size).toBeGreaterThan(10);
    expect([...validation].filter((t) => train.has(t))).toEqual([]);
  });

  it("with --no-dedup, the same text under another id can be in both (documented)", async () => {
    const { train, validation } = await prepare("nodedup", false);
    expect([...validation].filter((t) => train.has(t)).length).toBeGreaterThan(0);
  });
});
