import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Compressor, compress } from "zstd-napi";
import { BadRecordError, BadRecordLog } from "../document.js";
import { sampleDir } from "../pipeline/config.js";
import { globToRegExp } from "./glob.js";
import { readParquetRows } from "./parquet.js";
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

  // A system error (here EISDIR: a directory under a data file's name, as a permission or a
  // failing disk would give EACCES or EIO) is no bad data: it fails the task, naming the file,
  // instead of counting the rest of the file as unreadable and ending with status 0.
  it("fails on a system error while reading, in jsonl, jsonl.zst and parquet", async () => {
    for (const name of ["d.jsonl", "d.jsonl.zst", "d.parquet"]) {
      const p = join(dir, name);
      await mkdir(p);
      const bad = new BadRecordLog();
      await expect(collect(p, bad)).rejects.toThrow(
        new RegExp(
          `${name.replaceAll(".", "\\.")}: cannot read it \\(EISDIR: .*a system error, not bad data`,
        ),
      );
      expect(bad.count).toBe(0);
    }
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

  it("keeps every record of a valid frame followed by trailing bytes (sample file + 8 zeros)", async () => {
    // Before: DecompressStream pushed the decoded output, then failed the stream on the
    // trailing bytes, and the destroyed stream dropped it: 0 of 108 records came out.
    const src = join(sampleDir(), "slimpajama/train/chunk1/example_train_0.jsonl.zst");
    const clean = await collect(src);
    expect(clean.length).toBeGreaterThan(50);
    const { readFile } = await import("node:fs/promises");
    const frame = await readFile(src);
    const decompressed = clean.reduce((a, r) => a + r.bytes, 0);
    for (const [name, tail] of [
      ["zeros", Buffer.alloc(8)],
      ["text", Buffer.from("GARBAGE TRAILING BYTES\n")],
    ] as const) {
      const p = join(dir, `trailing-${name}.jsonl.zst`);
      await writeFile(p, Buffer.concat([frame, tail]));
      const bad = new BadRecordLog();
      const recs = await collect(p, bad);
      expect(recs.map((r) => r.value)).toEqual(clean.map((r) => r.value));
      expect(bad.count).toBe(1);
      const e = bad.entries[0];
      expect(e?.reason).toMatch(
        /^trailing data or a corrupt frame after the last complete zstd frame/,
      );
      expect(e?.reason).toContain(
        `at compressed byte ${frame.length} (decompressed offset ${decompressed})`,
      );
      expect(e?.reason).toContain(`after ${clean.at(-1)?.line} complete lines`);
      expect([e?.line, e?.offset, e?.compressedOffset, e?.bytesUnreadable]).toEqual([
        (clean.at(-1)?.line ?? 0) + 1,
        decompressed,
        frame.length,
        tail.length,
      ]);
      expect(bad.bytesUnreadable).toBe(tail.length);
    }
  });

  it("keeps every record before a corrupt second frame, down to the damaged block", async () => {
    const p = join(dir, "d.jsonl.zst");
    // incompressible records, so the good frame spans several 256 KiB reads
    const { randomBytes } = await import("node:crypto");
    const noisy = Array.from({ length: 50 }, () =>
      JSON.stringify({ text: randomBytes(15000).toString("base64") }),
    );
    const good = compress(Buffer.from(`${noisy.join("\n")}\n`));
    // a compressible second frame of many 128 KiB blocks, all inside one 256 KiB read, so
    // the failing decode call also decoded the good blocks before the damaged one
    const body2 = Buffer.from(`${lines.join("\n")}\n`);
    const second = Buffer.from(compress(body2));
    const blocks = zstdBlocks(second);
    expect(blocks.length).toBeGreaterThan(6);
    expect(second.length).toBeLessThan(128 << 10);
    const j = 5;
    const damaged = blocks[j]?.header as number;
    second[damaged] = (second[damaged] as number) | 0b110; // block type 3: reserved, an error
    await writeFile(p, Buffer.concat([good, second]));
    const bad = new BadRecordLog();
    const recs = await collect(p, bad);
    // every line wholly inside blocks 0..j-1 of the second frame survives
    const keptBytes = j * BLOCK;
    const expected = lines.filter((_, i) => (offsets[i + 1] as number) <= keptBytes).length;
    expect(recs.length).toBe(50 + expected);
    expect(recs.slice(50).map((r) => r.value)).toEqual(
      lines.slice(0, expected).map((l) => JSON.parse(l)),
    );
    expect(bad.count).toBe(1);
    const e = bad.entries[0];
    expect(e?.reason).toMatch(/^corrupt zstd frame at compressed byte/);
    expect(e?.compressedOffset).toBe(good.length + damaged);
    expect(e?.bytesUnreadable).toBe(second.length - damaged);
    const goodBytes = noisy.reduce((a, l) => a + l.length + 1, 0);
    expect(e?.offset).toBe(goodBytes + keptBytes);
    expect(e?.reason).toContain(`(decompressed offset ${goodBytes + keptBytes})`);
    expect(e?.reason).toContain(`after ${50 + expected} complete lines and a partial line of`);
    expect(e?.line).toBe(recs.length + 1);
  });

  it("keeps nothing of a frame that fails its content checksum, and reports it where it begins", async () => {
    const p = join(dir, "k.jsonl.zst");
    const good = Buffer.from(compress(Buffer.from(`${lines.slice(0, 3).join("\n")}\n`)));
    const c = new Compressor();
    c.setParameters({ checksumFlag: true });
    // a short line is stored as raw literals: a changed byte decodes without an error, and
    // only the frame's XXH64 checksum, checked after its last block, tells it is wrong
    const second = Buffer.from(
      c.compress(Buffer.from(`${JSON.stringify({ text: "MARKER-1" })}\n`)),
    );
    const at = second.indexOf("MARKER-1");
    expect(at).toBeGreaterThan(0);
    second[at + 7] = 0x32; // MARKER-1 -> MARKER-2
    await writeFile(p, Buffer.concat([good, second]));
    const bad = new BadRecordLog();
    const recs = await collect(p, bad);
    expect(recs.map((r) => r.value.text)).toEqual(lines.slice(0, 3).map((l) => JSON.parse(l).text));
    expect(bad.count).toBe(1);
    const e = bad.entries[0];
    expect(e?.reason).toMatch(/^corrupt zstd frame at compressed byte \d+ .*content checksum/);
    expect([e?.line, e?.compressedOffset, e?.bytesUnreadable]).toEqual([
      4,
      good.length,
      second.length,
    ]);
  });

  it("reports a truncated zstd file from its last whole block, and an empty file", async () => {
    const p = join(dir, "e.jsonl.zst");
    const full = Buffer.from(compress(Buffer.from(`${lines.join("\n")}\n`)));
    const cut = full.length >> 1;
    await writeFile(p, full.subarray(0, cut));
    const bad = new BadRecordLog();
    const recs = await collect(p, bad);
    const blocks = zstdBlocks(full);
    const j = blocks.findIndex((b) => b.end > cut); // the block the cut falls in
    const expected = lines.filter((_, i) => (offsets[i + 1] as number) <= j * BLOCK).length;
    expect(recs.length).toBe(expected);
    expect(bad.count).toBe(1);
    expect(bad.entries[0]?.reason).toMatch(/^truncated zstd file at compressed byte/);
    expect(bad.entries[0]?.compressedOffset).toBe(blocks[j]?.header);
    expect(bad.entries[0]?.bytesUnreadable).toBe(cut - (blocks[j]?.header as number));
    const empty = join(dir, "f.jsonl");
    await writeFile(empty, "");
    const bad2 = new BadRecordLog();
    expect(await collect(empty, bad2)).toEqual([]);
    expect(bad2.entries[0]?.reason).toMatch(/empty file/);
  });

  it("reports a file of blank lines as empty, in jsonl and jsonl.zst", async () => {
    const plain = join(dir, "blank.jsonl");
    const zst = join(dir, "blank.jsonl.zst");
    await writeFile(plain, "\n\r\n\n");
    await writeFile(zst, compress(Buffer.from("\n\n")));
    for (const [p, n] of [
      [plain, 3],
      [zst, 2],
    ] as const) {
      const bad = new BadRecordLog();
      expect(await collect(p, bad)).toEqual([]);
      expect(bad.entries).toEqual([
        { file: p, offset: 0, reason: `empty file: no records (${n} blank lines)` },
      ]);
    }
  });

  it("strips a UTF-8 byte order mark at the start of a file only, and counts it", async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const body = Buffer.from('{"text":"a"}\r\n{"text":"b"}\n');
    for (const name of ["bom.jsonl", "bom.jsonl.zst"]) {
      const p = join(dir, name);
      const data = Buffer.concat([bom, body]);
      await writeFile(p, name.endsWith(".zst") ? compress(data) : data);
      const bad = new BadRecordLog();
      const counters = { utf8Boms: 0 };
      const recs: RawRecord[] = [];
      for await (const r of readRecords(p, formatOf(p), bad, { counters })) recs.push(r);
      expect(bad.entries).toEqual([]);
      expect(recs.map((r) => [r.value.text, r.line, r.bytes])).toEqual([
        ["a", 1, 14],
        ["b", 2, 13],
      ]);
      expect(counters.utf8Boms).toBe(1);
    }
    // a BOM anywhere else is data, and here makes the line invalid JSON
    const mid = join(dir, "mid.jsonl");
    await writeFile(mid, Buffer.concat([body, bom, body]));
    const bad = new BadRecordLog();
    expect((await collect(mid, bad)).length).toBe(3);
    expect(bad.entries.map((e) => [e.line, e.reason.split(":")[0]])).toEqual([[3, "invalid JSON"]]);
  });
});

/** zstd's block size: every block but a frame's last holds exactly this much (default params). */
const BLOCK = 128 << 10;
/** offsets[i]: decompressed offset of lines[i] in `lines.join("\n") + "\n"`. */
const offsets = [0];
for (const l of lines) offsets.push((offsets.at(-1) as number) + l.length + 1);

/** The blocks of one zstd frame (format spec, RFC 8878 3.1): header offset and end offset. */
function zstdBlocks(frame: Buffer): { header: number; end: number }[] {
  const fhd = frame[4] as number;
  const single = (fhd >> 5) & 1;
  const fcs = [single, 2, 4, 8][fhd >> 6] as number;
  const did = [0, 1, 2, 4][fhd & 3] as number;
  let at = 5 + (single ? 0 : 1) + did + fcs;
  const out: { header: number; end: number }[] = [];
  for (;;) {
    const h =
      (frame[at] as number) | ((frame[at + 1] as number) << 8) | ((frame[at + 2] as number) << 16);
    const type = (h >> 1) & 3;
    const size = h >> 3;
    const end = at + 3 + (type === 1 ? 1 : size);
    out.push({ header: at, end });
    at = end;
    if (h & 1) return out;
  }
}

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

describe("parquet row groups of any size", () => {
  it("reads a row group far larger than its pages in page-sized reads, in one pass", async () => {
    // one group of 40 rows of ~600 KB incompressible text: a ~24 MB content column chunk
    const content = Array.from(
      { length: 40 },
      (_, i) => `# ${i}\n${randomBytes(450_000).toString("base64")}`,
    );
    const p = join(dir, "big-group.parquet");
    const buf = parquetWriteBuffer({
      columnData: [
        { name: "content", data: content, type: "STRING" },
        { name: "id", data: content.map((_, i) => `id${i}`), type: "STRING" },
      ],
      rowGroupSize: 40,
    });
    await writeFile(p, Buffer.from(buf));
    const reads: number[] = [];
    const bad = new BadRecordLog();
    const recs: RawRecord[] = [];
    const onRead = (start: number, end: number) => reads.push(end - start);
    for await (const r of readParquetRows(p, bad, { onRead })) recs.push(r);
    expect(bad.entries).toEqual([]);
    expect(recs.map((r) => r.row)).toEqual(content.map((_, i) => i));
    expect(recs.map((r) => r.value.content)).toEqual(content);
    expect(recs[7]?.value.id).toBe("id7");
    // Before: the whole ~24 MB column chunk in one read, decoded at once. Now no read is
    // larger than the 1 MiB read-ahead or a page (a row's ~600 KB here), and the file is
    // read once, front to back.
    expect(reads.length).toBeGreaterThan(20);
    expect(Math.max(...reads)).toBeLessThanOrEqual(1 << 20);
    expect(reads.reduce((a, b) => a + b, 0)).toBeLessThan(buf.byteLength * 1.05);
  });

  it("reads a 160 MB row group under a 64 MB heap limit (the whole group took the worker out of memory)", () => {
    const reader = fileURLToPath(new URL("../../dist/io/parquet.js", import.meta.url));
    if (!existsSync(reader))
      throw new Error(`${reader} missing: run \`npx tsc -p tsconfig.build.json\` in packages/data`);
    const p = join(dir, "huge-group.parquet");
    const piece = "def f(x):\n    return x + 1  # padding padding\n";
    const content = Array.from(
      { length: 40 },
      (_, i) => `# file ${i}\n${piece.repeat(Math.floor(4e6 / piece.length))}`,
    );
    const script = `
      const { parquetWriteBuffer } = await import("hyparquet-writer");
      const { writeFileSync } = await import("node:fs");
      const piece = ${JSON.stringify(piece)};
      const data = Array.from({ length: 40 }, (_, i) => "# file " + i + "\\n" + piece.repeat(Math.floor(4e6 / piece.length)));
      writeFileSync(${JSON.stringify(p)}, Buffer.from(parquetWriteBuffer({ columnData: [
        { name: "content", data, type: "STRING" }, { name: "id", data: data.map((_, i) => "id" + i), type: "STRING" } ], rowGroupSize: 40 })));`;
    const w = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
    });
    expect(w.status, w.stderr).toBe(0);
    const read = `
      const { readParquetRows } = await import(${JSON.stringify(pathToFileURL(reader).href)});
      let rows = 0, bytes = 0;
      const bad = { report(b) { throw new Error(JSON.stringify(b)); } };
      for await (const r of readParquetRows(${JSON.stringify(p)}, bad)) { rows++; bytes += r.bytes; }
      console.log(JSON.stringify({ rows, bytes }));`;
    const r = spawnSync(
      process.execPath,
      ["--max-old-space-size=64", "--input-type=module", "-e", read],
      { encoding: "utf8", cwd: fileURLToPath(new URL("../..", import.meta.url)) },
    );
    expect(r.status, r.stderr.slice(0, 2000)).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({
      rows: 40,
      bytes: content.reduce((a, c) => a + c.length, 0),
    });
  });

  it("reports a value over the record limit with its row, and reads the rest", async () => {
    const content = Array.from({ length: 20 }, (_, i) =>
      i === 6 ? `huge ${"y".repeat(300_000)}` : `def f${i}(): return ${i}\n`,
    );
    const p = join(dir, "huge-row.parquet");
    await writeFile(
      p,
      Buffer.from(
        parquetWriteBuffer({
          columnData: [
            { name: "content", data: content, type: "STRING" },
            { name: "id", data: content.map((_, i) => `id${i}`), type: "STRING" },
          ],
          rowGroupSize: 10,
          pageSize: 1000, // the huge value gets a page of its own
        }),
      ),
    );
    const bad = new BadRecordLog();
    const recs: RawRecord[] = [];
    for await (const r of readRecords(p, "parquet", bad, { maxRecordBytes: 100_000 })) recs.push(r);
    expect(recs.map((r) => r.row)).toEqual(content.map((_, i) => i).filter((i) => i !== 6));
    expect(recs.map((r) => r.value.id)).toEqual(
      content.map((_, i) => `id${i}`).filter((_, i) => i !== 6),
    );
    expect(bad.entries).toHaveLength(1);
    expect(bad.entries[0]?.row).toBe(6);
    expect(bad.entries[0]?.rowsLost).toBe(1);
    expect(bad.entries[0]?.reason).toMatch(
      /^row 6: column content: the value is \d+ bytes, over the 100000-byte record limit; skipped$/,
    );
    expect(bad.rowsLost).toBe(1);
  });

  it("counts the rows lost to a corrupt row group (known from the metadata)", async () => {
    const content = Array.from({ length: 3000 }, (_, i) => `def f${i}():\n    return ${i}\n`);
    const buf = Buffer.from(
      parquetWriteBuffer({
        columnData: [
          { name: "content", data: content, type: "STRING" },
          { name: "id", data: content.map((_, i) => `id${i}`), type: "STRING" },
        ],
        rowGroupSize: 1000,
      }),
    );
    const { parquetMetadata } = await import("hyparquet");
    const meta = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    const chunk = meta.row_groups[1]?.columns[0]?.meta_data;
    const start = Number(chunk?.data_page_offset);
    buf.fill(0xff, start, start + 40); // group 1's first content page header
    const p = join(dir, "corrupt-group.parquet");
    await writeFile(p, buf);
    const bad = new BadRecordLog();
    const recs: RawRecord[] = [];
    for await (const r of readRecords(p, "parquet", bad)) recs.push(r);
    expect(recs.map((r) => r.row)).toEqual(
      content.map((_, i) => i).filter((i) => i < 1000 || i >= 2000),
    );
    expect(bad.count).toBe(1);
    expect(bad.entries[0]?.row).toBe(1000);
    expect(bad.entries[0]?.rowsLost).toBe(1000);
    expect(bad.entries[0]?.reason).toMatch(
      /^row group 1 \(1000 rows\) unreadable from row 1000: .*; 1000 rows lost$/,
    );
    expect(bad.rowsLost).toBe(1000);
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
