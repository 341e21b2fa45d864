// Bad input through the whole pipeline: every bad record is skipped, counted in the manifest
// and listed with file and line in stats.json; --strict makes the first one fatal.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compress } from "zstd-napi";
import { BadRecordError } from "../document.js";
import { runLocal } from "../executors/local.js";
import { ProgressPrinter } from "../executors/progress.js";
import { ShardSet } from "../shards/shard-set.js";
import { resolveConfig } from "./config.js";
import { loadOrMakePlan } from "./plan.js";
import { summarize } from "./summary.js";
import { bytesTokenizer } from "./tokenizer.js";

let dir: string;
const quiet = new ProgressPrinter({
  write: () => true,
  isTTY: false,
} as unknown as NodeJS.WriteStream);
const doc = (i: number) =>
  JSON.stringify({ text: `document number ${i} ${"lorem ipsum dolor ".repeat(20 + i)}` });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bad-input-"));
  const sky = join(dir, "skypile", "data");
  await mkdir(sky, { recursive: true });
  await writeFile(
    join(sky, "2023-01_zh_head_0000.jsonl"),
    [
      doc(1),
      "{not json",
      JSON.stringify({ content: "no text field" }),
      JSON.stringify({ text: 42 }),
      doc(2),
      "",
    ].join("\n"),
  );
  await writeFile(join(sky, "2023-01_zh_head_0001.jsonl"), ""); // empty file
  const sp = join(dir, "slimpajama", "train", "chunk1");
  await mkdir(sp, { recursive: true });
  const z = Buffer.from(compress(Buffer.from(`${[doc(3), doc(4)].join("\n")}\n`)));
  await writeFile(join(sp, "example_train_0.jsonl.zst"), z.subarray(0, z.length - 7)); // truncated frame
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function config(output: string, strict: boolean) {
  return resolveConfig(
    {
      output,
      tokenizer: "bytes",
      strict,
      blockSize: 8,
      chunkTokens: 64,
      validationFraction: 0,
      sources: [
        { name: "skypile", local: join(dir, "skypile") },
        { name: "slimpajama", local: join(dir, "slimpajama") },
      ],
    },
    dir,
  );
}

describe("bad input", () => {
  it("skips, counts and lists bad records with file and line; good records survive", async () => {
    const { plan } = await loadOrMakePlan(config(join(dir, "lenient"), false));
    await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
    const summary = await summarize(plan, 0);
    const sky = await ShardSet.open(join(dir, "lenient", "skypile"));
    expect(sky.manifest.stats.documentsRead).toBe(2);
    expect(sky.manifest.stats.badRecords).toBe(4); // bad JSON, no text, non-string text, empty file
    const stats = JSON.parse(await readFile(summary.statsFile, "utf8"));
    const listed = stats.tasks
      .filter((t: { stage: string }) => t.stage === "pack")
      .flatMap(
        (t: { badRecordList: { file: string; line?: number; reason: string }[] }) =>
          t.badRecordList,
      );
    expect(
      listed.map(
        (b: { file: string; line?: number; reason: string }) =>
          `${b.file}:${b.line ?? "-"}: ${b.reason}`,
      ),
    ).toEqual([
      expect.stringMatching(/^skypile\/data\/2023-01_zh_head_0000\.jsonl:2: invalid JSON/),
      'skypile/data/2023-01_zh_head_0000.jsonl:3: record has no string field "text"',
      'skypile/data/2023-01_zh_head_0000.jsonl:4: record has no string field "text"',
      "skypile/data/2023-01_zh_head_0001.jsonl:-: empty file: no records",
      expect.stringMatching(
        /^slimpajama\/train\/chunk1\/example_train_0\.jsonl\.zst:\d+: corrupt or truncated zstd stream/,
      ),
    ]);
    expect(summary.badRecords).toBe(5);
  });

  it("--strict stops at the first bad record with its location", async () => {
    const { plan } = await loadOrMakePlan(config(join(dir, "strict"), true));
    await expect(
      runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet }),
    ).rejects.toThrow(BadRecordError);
    await expect(
      runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet }),
    ).rejects.toThrow(/skypile\/data\/2023-01_zh_head_0000\.jsonl:line 2:byte \d+: invalid JSON/);
  });
});
