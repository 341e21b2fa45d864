// Bad input through the whole pipeline: every bad record is skipped, counted in the manifest
// and listed with file and line in stats.json; --strict makes the first one fatal.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
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
    // a UTF-8 byte order mark before the first (valid) record: stripped, not a bad record
    "\uFEFF" +
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
  // a valid frame and 8 trailing bytes: both records kept, the 8 bytes counted as unreadable
  const z2 = Buffer.from(compress(Buffer.from(`${[doc(5), doc(6)].join("\n")}\n`)));
  await writeFile(join(sp, "example_train_1.jsonl.zst"), Buffer.concat([z2, Buffer.alloc(8)]));
  // three row groups of 10 rows, the middle one corrupt: 10 rows lost, counted from metadata
  const sc = join(dir, "starcoder", "python");
  await mkdir(sc, { recursive: true });
  const content = Array.from({ length: 30 }, (_, i) => `def f${i}():\n    return ${i}\n`);
  const pq = Buffer.from(
    parquetWriteBuffer({
      columnData: [
        { name: "content", data: content, type: "STRING" },
        { name: "id", data: content.map((_, i) => `id${i}`), type: "STRING" },
      ],
      rowGroupSize: 10,
    }),
  );
  const { parquetMetadata } = await import("hyparquet");
  const meta = parquetMetadata(pq.buffer.slice(pq.byteOffset, pq.byteOffset + pq.length));
  const page = Number(meta.row_groups[1]?.columns[0]?.meta_data?.data_page_offset);
  pq.fill(0xff, page, page + 20);
  await writeFile(join(sc, "train-00000-of-00001.parquet"), pq);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function config(output: string, strict: boolean, dedup = true) {
  return resolveConfig(
    {
      output,
      tokenizer: "bytes",
      strict,
      dedup: { enabled: dedup },
      blockSize: 8,
      chunkTokens: 64,
      validationFraction: 0,
      sources: [
        { name: "skypile", local: join(dir, "skypile") },
        { name: "slimpajama", local: join(dir, "slimpajama") },
        ...(strict
          ? []
          : [{ name: "starcoder", local: join(dir, "starcoder"), subsets: ["python"] }]),
      ],
    },
    dir,
  );
}

describe("bad input", () => {
  it.each([
    ["with dedup", true],
    ["without dedup", false],
  ])(
    "skips, counts and lists bad records with file and line; good records survive (%s)",
    async (_, dedup) => {
      const out = join(dir, dedup ? "lenient" : "lenient-nodedup");
      const { plan } = await loadOrMakePlan(config(out, false, dedup));
      await runLocal(plan, { inProcess: true, tokenizer: bytesTokenizer(), printer: quiet });
      const summary = await summarize(plan, 0);
      const sky = await ShardSet.open(join(out, "skypile"));
      expect(sky.manifest.stats.documentsRead).toBe(2);
      expect(sky.manifest.stats.badRecords).toBe(4); // bad JSON, no text, non-string text, empty file
      const stats = JSON.parse(await readFile(summary.statsFile, "utf8"));
      type Listed = {
        file: string;
        line?: number;
        row?: number;
        reason: string;
        bytesUnreadable?: number;
      };
      const packs = stats.tasks.filter((t: { stage: string }) => t.stage === "pack");
      const listed: Listed[] = packs.flatMap((t: { badRecordList: Listed[] }) => t.badRecordList);
      expect(listed.map((b) => `${b.file}:${b.line ?? b.row ?? "-"}: ${b.reason}`)).toEqual([
        expect.stringMatching(/^skypile\/data\/2023-01_zh_head_0000\.jsonl:2: invalid JSON/),
        'skypile/data/2023-01_zh_head_0000.jsonl:3: record has no string field "text"',
        'skypile/data/2023-01_zh_head_0000.jsonl:4: record has no string field "text"',
        "skypile/data/2023-01_zh_head_0001.jsonl:-: empty file: no records",
        expect.stringMatching(
          /^slimpajama\/train\/chunk1\/example_train_0\.jsonl\.zst:1: truncated zstd file at compressed byte \d+ \(decompressed offset 0\) after 0 complete lines/,
        ),
        expect.stringMatching(
          /^slimpajama\/train\/chunk1\/example_train_1\.jsonl\.zst:3: trailing data or a corrupt frame after the last complete zstd frame .* \(8 compressed bytes\) is unreadable$/,
        ),
        expect.stringMatching(
          /^starcoder\/python\/train-00000-of-00001\.parquet:10: row group 1 \(10 rows\) unreadable from row 10: .*; 10 rows lost$/,
        ),
      ]);
      expect(summary.badRecords).toBe(7);
      // what the bad records stand for: rows (parquet) and bytes (zstd), per source and in all
      const sp = await ShardSet.open(join(out, "slimpajama"));
      const sc = await ShardSet.open(join(out, "starcoder"));
      expect(sp.manifest.stats.documentsRead).toBe(2);
      const zstdLost = listed.reduce((a, b) => a + (b.bytesUnreadable ?? 0), 0);
      expect(zstdLost).toBeGreaterThan(8);
      expect(sp.manifest.stats.bytesUnreadable).toBe(zstdLost);
      expect(sp.manifest.stats.rowsLost).toBe(0);
      expect(sc.manifest.stats.documentsRead).toBe(20);
      expect(sc.manifest.stats.rowsLost).toBe(10);
      expect(sc.manifest.stats.bytesUnreadable).toBe(0);
      expect([summary.rowsLost, summary.bytesUnreadable]).toEqual([10, zstdLost]);
      const tasksLost = packs.reduce((a: number, t: { rowsLost: number }) => a + t.rowsLost, 0);
      expect(tasksLost).toBe(10);
      expect(summary.table).toMatch(/rows lost.*bytes unreadable/);
      expect(summary.table.split("\n").find((l) => l.includes("starcoder"))).toMatch(/ 1 +10 +0 /);
      // the byte order mark is counted where it was stripped
      const boms = packs.reduce(
        (a: number, t: { extra: { utf8BomsStripped?: number } }) =>
          a + (t.extra.utf8BomsStripped ?? 0),
        0,
      );
      expect(boms).toBe(1);
    },
  );

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
