import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { compress } from "zstd-napi";
import { BadRecordError, BadRecordLog } from "../document.js";
import { sampleDir } from "../pipeline/config.js";
import { globToRegExp } from "./glob.js";
import { formatOf, type RawRecord, readRecords } from "./records.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "records-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(path: string, bad = new BadRecordLog()): Promise<RawRecord[]> {
  const out: RawRecord[] = [];
  for await (const r of readRecords(path, formatOf(path), bad)) out.push(r);
  return out;
}

const lines = Array.from({ length: 3000 }, (_, i) =>
  JSON.stringify({ text: `doc ${i} ${"x".repeat(i % 700)}`, meta: { i } }),
);

describe("jsonl and jsonl.zst", () => {
  it("streams every record of a multi-MB compressed file with line numbers", async () => {
    const p = join(dir, "a.jsonl.zst");
    await writeFile(p, compress(Buffer.from(`${lines.join("\n")}\n`)));
    const recs = await collect(p);
    expect(recs.length).toBe(3000);
    expect(recs[2999]?.value.text).toBe(JSON.parse(lines[2999] as string).text);
    expect(recs[10]?.line).toBe(11);
  });

  it("reads plain jsonl, CRLF endings and a last line without newline", async () => {
    const p = join(dir, "b.jsonl");
    await writeFile(p, '{"text":"a"}\r\n\n{"text":"b"}');
    const recs = await collect(p);
    expect(recs.map((r) => [r.value.text, r.line])).toEqual([
      ["a", 1],
      ["b", 3],
    ]);
  });

  it("skips and reports invalid JSON, non-objects and invalid UTF-8 with file and line", async () => {
    const p = join(dir, "c.jsonl");
    const invalidUtf8 = Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
    await writeFile(
      p,
      Buffer.concat([
        Buffer.from('{"text":"ok"}\n{"text": nope}\n[1,2]\n'),
        invalidUtf8,
        Buffer.from('\n{"text":"ok2"}\n'),
      ]),
    );
    const bad = new BadRecordLog();
    const recs = await collect(p, bad);
    expect(recs.map((r) => r.value.text)).toEqual(["ok", "ok2"]);
    expect(bad.count).toBe(3);
    expect(bad.entries.map((e) => [e.line, e.reason.split(":")[0]])).toEqual([
      [2, "invalid JSON"],
      [3, "line is not a JSON object"],
      [4, "invalid UTF-8"],
    ]);
    expect(bad.entries[0]?.file).toBe(p);
    await expect(collect(p, new BadRecordLog({ strict: true }))).rejects.toThrow(BadRecordError);
    await expect(collect(p, new BadRecordLog({ strict: true }))).rejects.toThrow(
      /c\.jsonl:line 2:byte 14: invalid JSON/,
    );
  });

  it("reads a line spanning many reads exactly, in jsonl and jsonl.zst", async () => {
    // 3 MB of text spans twelve 256 KiB reads; the lines around it and a last line without
    // newline must come out whole, with their numbers
    const long = "é long document ".repeat(200_000);
    const body = `{"text":"a"}\n${JSON.stringify({ text: long })}\r\n{"text":"b"}\n{"text":"${"c".repeat(300_000)}"}`;
    for (const name of ["long.jsonl", "long.jsonl.zst"]) {
      const p = join(dir, name);
      await writeFile(p, name.endsWith(".zst") ? compress(Buffer.from(body)) : body);
      const bad = new BadRecordLog();
      const recs = await collect(p, bad);
      expect(bad.count).toBe(0);
      expect(recs.map((r) => [(r.value.text as string).length, r.line])).toEqual([
        [1, 1],
        [long.length, 2],
        [1, 3],
        [300_000, 4],
      ]);
      expect(recs[1]?.value.text).toBe(long);
    }
  });

  it("reports and skips a line over maxRecordBytes, and a file with no newline at all", async () => {
    const p = join(dir, "huge.jsonl");
    const huge = JSON.stringify({ text: "x".repeat(600_000) }); // spans three reads
    await writeFile(p, `{"text":"a"}\n${huge}\n{"text":"b"}\n${huge}`);
    const bad = new BadRecordLog();
    const out: RawRecord[] = [];
    for await (const r of readRecords(p, "jsonl", bad, { maxRecordBytes: 100_000 })) out.push(r);
    expect(out.map((r) => [r.value.text, r.line])).toEqual([
      ["a", 1],
      ["b", 3],
    ]);
    const start2 = 13; // line 2 starts after '{"text":"a"}\n'
    const start4 = start2 + huge.length + 1 + 13;
    expect(bad.entries.map((e) => [e.line, e.offset, e.reason])).toEqual([
      [2, start2, "line longer than 100000 bytes (the longest record read); skipped"],
      [4, start4, "line longer than 100000 bytes (the longest record read); skipped"],
    ]);
    // binary data under a .jsonl name: one report, memory bounded by maxRecordBytes
    const noNewline = join(dir, "binary.jsonl");
    await writeFile(noNewline, Buffer.alloc(1_000_000, 0x41));
    const bad2 = new BadRecordLog();
    for await (const _ of readRecords(noNewline, "jsonl", bad2, { maxRecordBytes: 100_000 }))
      throw new Error("no record expected");
    expect(bad2.entries.map((e) => [e.line, e.offset])).toEqual([[1, 0]]);
    // --strict: the first one is fatal, with its location
    const strict = readRecords(p, "jsonl", new BadRecordLog({ strict: true }), {
      maxRecordBytes: 100_000,
    });
    await expect(
      (async () => {
        for await (const _ of strict);
      })(),
    ).rejects.toThrow(/huge\.jsonl:line 2:byte 13: line longer than 100000 bytes/);
  });

  it("reports a corrupt zstd frame after the records before it", async () => {
    const p = join(dir, "d.jsonl.zst");
    // incompressible records, so the good frame spans several 256 KiB reads
    const { randomBytes } = await import("node:crypto");
    const noisy = Array.from({ length: 50 }, () =>
      JSON.stringify({ text: randomBytes(15000).toString("base64") }),
    );
    const good = compress(Buffer.from(`${noisy.join("\n")}\n`));
    const corrupt = Buffer.from(compress(Buffer.from(`${lines.slice(50, 100).join("\n")}\n`)));
    corrupt.fill(0x55, 8, 40);
    await writeFile(p, Buffer.concat([good, corrupt]));
    const bad = new BadRecordLog();
    const recs = await collect(p, bad);
    expect(recs.length).toBeGreaterThanOrEqual(25); // records of the last 256 KiB read may be lost
    expect(recs.length).toBeLessThanOrEqual(50);
    expect(bad.count).toBe(1);
    expect(bad.entries[0]?.reason).toMatch(/corrupt or truncated zstd stream/);
    expect(bad.entries[0]?.line).toBe(recs.length + 1);
  });

  it("reports a truncated zstd file and an empty file", async () => {
    const p = join(dir, "e.jsonl.zst");
    const full = compress(Buffer.from(`${lines.join("\n")}\n`));
    await writeFile(p, full.subarray(0, full.length >> 1));
    const bad = new BadRecordLog();
    const recs = await collect(p, bad);
    expect(recs.length).toBeGreaterThan(0);
    expect(recs.length).toBeLessThan(3000);
    expect(bad.entries.at(-1)?.reason).toMatch(/truncated/);
    const empty = join(dir, "f.jsonl");
    await writeFile(empty, "");
    const bad2 = new BadRecordLog();
    expect(await collect(empty, bad2)).toEqual([]);
    expect(bad2.entries[0]?.reason).toMatch(/empty file/);
  });
});

describe("parquet", () => {
  const content = Array.from({ length: 2500 }, (_, i) => `def f${i}():\n    return ${i}\n`);
  const write = async (p: string) => {
    const buf = parquetWriteBuffer({
      columnData: [
        {
          name: "max_stars_repo_path",
          data: content.map((_, i) => `src/f${i}.py`),
          type: "STRING",
        },
        { name: "content", data: content, type: "STRING" },
        { name: "id", data: content.map((_, i) => String(i)), type: "STRING" },
      ],
      rowGroupSize: 1000,
    });
    await writeFile(p, Buffer.from(buf));
    return buf.byteLength;
  };

  it("reads every row, row group by row group, with row numbers", async () => {
    const p = join(dir, "a.parquet");
    await write(p);
    const recs = await collect(p);
    expect(recs.length).toBe(2500);
    expect(recs[1234]?.value.content).toBe(content[1234]);
    expect(recs[1234]?.row).toBe(1234);
  });

  it("reports a truncated parquet file", async () => {
    const p = join(dir, "b.parquet");
    const n = await write(p);
    const { truncate } = await import("node:fs/promises");
    await truncate(p, Math.floor(n / 2));
    const bad = new BadRecordLog();
    expect(await collect(p, bad)).toEqual([]);
    expect(bad.entries[0]?.reason).toMatch(/not a readable parquet file/);
    expect(bad.entries[0]?.file).toBe(p);
  });
});

describe("glob", () => {
  it("matches ** * ? and {a,b}", () => {
    expect(
      globToRegExp("train/**/*.jsonl.zst").test("train/chunk1/example_train_0.jsonl.zst"),
    ).toBe(true);
    expect(globToRegExp("train/**/*.jsonl.zst").test("train/x.jsonl.zst")).toBe(true);
    expect(globToRegExp("train/**/*.jsonl.zst").test("validation/chunk1/a.jsonl.zst")).toBe(false);
    expect(
      globToRegExp("data/*_zh_{head,middle}_*.jsonl").test("data/2020-40_zh_head_0001.jsonl"),
    ).toBe(true);
    expect(globToRegExp("python/*.parquet").test("python/sub/a.parquet")).toBe(false);
    expect(() => formatOf("a.txt")).toThrow(/unknown input format/);
  });
});

describe("parquet reading and V8", () => {
  it("never detaches an ArrayBuffer (that would deoptimise the tokenizer for the whole worker)", () => {
    // hysnappy's wasm memory.grow() detached its old buffer; V8 then drops its process-wide
    // "no detached buffers" protector and recompiles all typed-array code with extra checks
    const reader = fileURLToPath(new URL("../../dist/io/parquet.js", import.meta.url));
    if (!existsSync(reader))
      throw new Error(`${reader} missing: run \`npx tsc -p tsconfig.build.json\` in packages/data`);
    const files = ["python", "c", "jupyter-scripts-dedup-filtered"].map((l) =>
      join(sampleDir(), "starcoderdata", l, "train-00000-of-00001.parquet"),
    );
    const script = `
      const { readParquetRows } = await import(${JSON.stringify(pathToFileURL(reader).href)});
      const { parquetMetadata } = await import("hyparquet");
      const { readFileSync } = await import("node:fs");
      const files = ${JSON.stringify(files)};
      let rows = 0;
      const codecs = new Set();
      for (const f of files) {
        const b = readFileSync(f);
        const meta = parquetMetadata(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
        for (const g of meta.row_groups) for (const c of g.columns) codecs.add(c.meta_data.codec);
        for await (const _ of readParquetRows(f, { report() { throw new Error("bad record"); } })) rows++;
      }
      console.log(JSON.stringify({ rows, codecs: [...codecs] }));`;
    const r = spawnSync(
      process.execPath,
      ["--trace-protector-invalidation", "--input-type=module", "-e", script],
      { encoding: "utf8", cwd: fileURLToPath(new URL("../..", import.meta.url)) },
    );
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}");
    expect(result.codecs).toContain("SNAPPY");
    expect(result.rows).toBeGreaterThan(10);
    expect(r.stdout + r.stderr).not.toMatch(/ArrayBufferDetaching/);
  });
});
