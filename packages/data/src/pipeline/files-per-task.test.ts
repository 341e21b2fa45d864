// filesPerTask changes the shard layout (file names, which documents share a block: each task's
// full chunks come before the pooled remainders), never what is kept: the same documents in the
// same splits, the same counts, and a manifest whose `stats` are the same bytes (README,
// "Pipeline"). The removal reasons were once listed in the order the tasks met them, so the
// manifest's bytes followed the task boundaries.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
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
// letters, not digits: normalisation folds every digit to 0
const word = (n: number) =>
  [n % 26, (n >> 5) % 26, (n >> 10) % 26].map((c) => String.fromCharCode(97 + c)).join("");
const doc = (i: number) =>
  Array.from({ length: 12 }, (_, w) => word(i * 7919 + w * 104729 + i * w * 13)).join(" ");
const jsonl = (texts: string[]) => `${texts.map((text) => JSON.stringify({ text })).join("\n")}\n`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "files-per-task-"));
  const data = join(dir, "skypile", "data");
  await mkdir(data, { recursive: true });
  // file 0 removes an exact duplicate, file 1 an empty text: with one task per file the
  // duplicate is met first, with one task for all files the filter's count comes first
  const files = [
    [doc(0), doc(1), doc(0), doc(2)],
    ["", doc(3), doc(4)],
    [doc(5), doc(6), doc(1)],
  ];
  for (const [i, texts] of files.entries())
    await writeFile(join(data, `2023-01_zh_head_000${i}.jsonl`), jsonl(texts));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function prepare(filesPerTask: number) {
  const out = join(dir, `out-${filesPerTask}`);
  const cfg = resolveConfig(
    {
      output: out,
      tokenizer: "bytes",
      blockSize: 16,
      // every task's tokens fit in its tail: the pool holds the whole stream in both layouts
      chunkTokens: 16 * 64,
      validationFraction: 0.3,
      filesPerTask,
      sources: [{ name: "skypile", local: join(dir, "skypile") }],
    },
    dir,
  );
  const { plan } = await loadOrMakePlan(cfg);
  await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
  const manifest = JSON.parse(await readFile(join(out, "skypile", "manifest.json"), "utf8"));
  const docs: Record<string, string[]> = {};
  for (const split of ["train", "validation"]) {
    const set = await ShardSet.open(join(out, "skypile"), { split });
    const ids: number[] = [];
    for (let b = 0; b < set.numBlocks; b++) ids.push(...set.readGlobalBlock(b));
    set.close();
    // the complete documents (EOS = 2), sorted; the cut one at the end is left out
    const texts: string[] = [];
    let cur: number[] = [];
    for (const id of ids) {
      if (id !== 2) cur.push(id - 3);
      else {
        texts.push(Buffer.from(cur).toString("utf8"));
        cur = [];
      }
    }
    docs[split] = texts.sort();
  }
  return { manifest, docs };
}

describe("filesPerTask", () => {
  it("changes neither the documents kept, nor their split, nor the manifest's stats", async () => {
    const one = await prepare(1);
    const all = await prepare(3);
    expect(one.manifest.stats.removed).toEqual({ "empty-text": 1, "exact-duplicate": 2 });
    expect(JSON.stringify(all.manifest.stats)).toBe(JSON.stringify(one.manifest.stats));
    for (const split of ["train", "validation"]) {
      const { files: _a, ...a } = one.manifest.splits[split];
      const { files: _b, ...b } = all.manifest.splits[split];
      expect(b).toEqual(a);
    }
    expect(all.docs).toEqual(one.docs);
  });
});
