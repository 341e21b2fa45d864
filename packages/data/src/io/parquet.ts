/**
 * Parquet rows, streamed page by page. A row group is what the writer made one unit, and it
 * can be any size (pyarrow writes up to a million rows per group; a StarCoderData group of a
 * few hundred large files is hundreds of MB of text). Reading a whole group at once, as
 * hyparquet's parquetReadObjects does, took the worker out of memory on such a group, and
 * every rerun crashed again on the same file. Here each selected column of a group is read as
 * a sequence of pages through positional reads on one fd: memory holds one page per column
 * (pyarrow's pages are ~1 MiB), so any group of a flat schema is readable in bounded memory,
 * with a single sequential pass over the file. Pages are decoded by hyparquet's own page
 * decoder (pinned version), so values are exactly what parquetReadObjects gives.
 */
import { open } from "node:fs/promises";
import type {
  AsyncBuffer,
  ColumnChunk,
  DecodedArray,
  FileMetaData,
  PageHeader,
  SchemaTree,
} from "hyparquet";
import { parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";
import { parquetHeader, readPage } from "hyparquet/src/column.js";
import { convert, DEFAULT_PARSERS } from "hyparquet/src/convert.js";
import { getTreePath, isFlatColumn } from "hyparquet/src/schema.js";
import type { ColumnDecoder } from "hyparquet/src/types.js";
import { compressors as allCompressors } from "hyparquet-compressors";
import type { BadRecordLog } from "../document.js";
import { MAX_RECORD_BYTES, rethrowSystemError } from "./limits.js";
import type { RawRecord } from "./records.js";

/**
 * The page codecs, except hyparquet-compressors' SNAPPY (hysnappy, WebAssembly): growing its
 * wasm memory detaches the old ArrayBuffer, which makes V8 drop its "no ArrayBuffer was ever
 * detached" assumption for the whole process: every optimised function touching typed arrays
 * (the tokenizer's merge loops, MinHash, the spool) is deoptimised at once and recompiled
 * with a detach check on each access, for the rest of the worker's life. Without an entry
 * hyparquet uses its own JavaScript snappy decoder.
 */
const { SNAPPY: _wasmSnappy, ...compressors } = allCompressors;

/** Bytes read ahead per column chunk when its pages are small. */
const READ_AHEAD = 1 << 20;

/** Rows per read for a column hyparquet must assemble itself (nested; no source uses one). */
const NESTED_WINDOW_ROWS = 256;

export interface ParquetReadOptions {
  displayName?: string;
  columns?: string[];
  /** A page larger than this (uncompressed) is reported with its rows and skipped. */
  maxRecordBytes?: number;
  /** Test hook: called with every positional read's [start, end). */
  onRead?: (start: number, end: number) => void;
}

export async function* readParquetRows(
  path: string,
  bad: BadRecordLog,
  options: ParquetReadOptions = {},
): AsyncGenerator<RawRecord> {
  const name = options.displayName ?? path;
  const maxRecordBytes = options.maxRecordBytes ?? MAX_RECORD_BYTES;
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    if (size === 0) {
      bad.report({ file: name, offset: 0, reason: "empty file: no records" });
      return;
    }
    const read = async (start: number, end: number): Promise<Uint8Array> => {
      options.onRead?.(start, end);
      const out = new Uint8Array(end - start);
      let done = 0;
      while (done < out.length) {
        const { bytesRead } = await fh.read(out, done, out.length - done, start + done);
        if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${start + done}`);
        done += bytesRead;
      }
      return out;
    };
    const file: AsyncBuffer = {
      byteLength: size,
      slice: async (start: number, end?: number) =>
        (await read(start, Math.min(end ?? size, size))).buffer as ArrayBuffer,
    };
    let metadata: FileMetaData;
    try {
      metadata = await parquetMetadataAsync(file);
    } catch (err) {
      rethrowSystemError(err, name);
      bad.report({
        file: name,
        offset: size,
        reason: `not a readable parquet file (truncated or corrupt footer): ${(err as Error).message}`,
        bytesUnreadable: size,
      });
      return;
    }
    const schema = parquetSchema(metadata);
    const available = new Set(metadata.schema.slice(1).map((s) => s.name));
    const wanted = options.columns?.filter((c) => available.has(c));
    let rowStart = 0;
    for (const [g, group] of metadata.row_groups.entries()) {
      const rows = Number(group.num_rows);
      const chunks = group.columns.filter((c) => {
        const top = c.meta_data?.path_in_schema[0];
        return top !== undefined && (!wanted || wanted.includes(top));
      });
      let done = 0; // rows of this group yielded or reported
      try {
        const flat = chunks.every(
          (c) => c.meta_data && isFlatColumn(getTreePath(schema, c.meta_data.path_in_schema)),
        );
        const source = flat
          ? streamGroup(read, schema, chunks, rows, rowStart, maxRecordBytes)
          : windowedGroup(file, metadata, wanted, rowStart, rows);
        for await (const item of source) {
          if ("lost" in item) {
            bad.report({
              file: name,
              row: rowStart + item.row,
              reason: item.reason,
              rowsLost: item.lost,
            });
            done = item.row + item.lost;
            continue;
          }
          const value = item.value;
          const text = value.content ?? value.text;
          yield {
            value,
            row: rowStart + item.row,
            bytes: typeof text === "string" ? Buffer.byteLength(text) : 0,
          };
          done = item.row + 1;
        }
      } catch (err) {
        if (err instanceof Error && err.name === "BadRecordError") throw err; // --strict
        rethrowSystemError(err, name);
        const lost = rows - done;
        bad.report({
          file: name,
          row: rowStart + done,
          reason:
            `row group ${g} (${rows} rows) unreadable from row ${rowStart + done}: ` +
            `${(err as Error).message}; ${lost} rows lost`,
          rowsLost: lost,
        });
      }
      rowStart += rows;
    }
  } finally {
    await fh.close();
  }
}

type GroupItem =
  | { row: number; value: Record<string, unknown> }
  /** rows [row, row + lost) of the group are not readable; `reason` says why */
  | { row: number; lost: number; reason: string };

/** The rows of one group, assembled from one page stream per column. */
async function* streamGroup(
  read: (start: number, end: number) => Promise<Uint8Array>,
  schema: SchemaTree,
  chunks: ColumnChunk[],
  rows: number,
  groupStart: number,
  maxRecordBytes: number,
): AsyncGenerator<GroupItem> {
  const columns = chunks.map((c) => new ColumnPages(read, schema, c, maxRecordBytes));
  const names = columns.map((c) => c.name);
  let row = 0;
  while (row < rows) {
    // rows [row, upTo) are available (or skipped) in every column's current page
    let upTo = rows;
    let skip: { end: number; reason: string } | undefined;
    for (const col of columns) {
      await col.reach(row);
      upTo = Math.min(upTo, col.end);
      if (col.skipReason && (!skip || col.end > skip.end))
        skip = { end: col.end, reason: col.skipReason };
    }
    if (skip) {
      // an oversized page in some column: its rows are lost in every column
      const end = Math.min(skip.end, rows);
      const n = end - row;
      yield {
        row,
        lost: n,
        reason:
          n === 1
            ? `row ${groupStart + row}: ${skip.reason}; skipped`
            : `rows ${groupStart + row}-${groupStart + end - 1}: ${skip.reason}; skipped`,
      };
      row = end;
      continue;
    }
    for (; row < upTo; row++) {
      const value: Record<string, unknown> = {};
      for (let i = 0; i < columns.length; i++)
        value[names[i] as string] = (columns[i] as ColumnPages).at(row);
      yield { row, value };
    }
  }
}

/**
 * One column chunk as a sequence of pages, read ahead in ~1 MiB pieces (a page larger than
 * that is read whole). Holds only the current page's values.
 */
class ColumnPages {
  readonly name: string;
  private readonly decoder: ColumnDecoder;
  private pos: number; // file offset of the next page header
  private readonly stop: number; // file offset where the chunk ends
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0; // file offset of buf[0]
  private dictionary: DecodedArray | undefined;
  private values: DecodedArray = [];
  private first = 0; // group row of values[0]
  /** Group row after the current page. */
  end = 0;
  /** Set when the current page was skipped (over the record limit): why. */
  skipReason: string | undefined;

  constructor(
    private readonly read: (start: number, end: number) => Promise<Uint8Array>,
    schema: SchemaTree,
    chunk: ColumnChunk,
    private readonly maxRecordBytes: number,
  ) {
    const meta = chunk.meta_data;
    if (!meta) throw new Error("column metadata missing");
    if (chunk.file_path) throw new Error("column chunks in other files are not supported");
    const schemaPath = getTreePath(schema, meta.path_in_schema);
    this.name = meta.path_in_schema[0] as string;
    this.decoder = {
      pathInSchema: meta.path_in_schema,
      element: (schemaPath[schemaPath.length - 1] as SchemaTree).element,
      schemaPath,
      type: meta.type,
      codec: meta.codec,
      compressors,
      parsers: DEFAULT_PARSERS,
    };
    this.pos = Number(meta.dictionary_page_offset || meta.data_page_offset);
    this.stop = this.pos + Number(meta.total_compressed_size);
  }

  /** Value of group row `row`, which must lie in the current page. */
  at(row: number): unknown {
    return this.values[row - this.first];
  }

  /** Advances to the page holding group row `row`. */
  async reach(row: number): Promise<void> {
    while (this.end <= row) await this.nextPage();
  }

  /** Makes file bytes [pos, pos + n) available in buf, reading ahead. */
  private async ensure(n: number): Promise<void> {
    const have = this.bufStart + this.buf.length - this.pos;
    if (have >= n) return;
    if (this.pos + n > this.stop)
      throw new Error(`column ${this.name}: page runs past the end of its column chunk`);
    const end = Math.min(this.stop, this.pos + Math.max(n, READ_AHEAD));
    const kept = have > 0 ? this.buf.subarray(this.pos - this.bufStart) : undefined;
    const fresh = await this.read(this.pos + (kept?.length ?? 0), end);
    // a new buffer each time, never one reused: an uncompressed page's values may be views
    if (kept) {
      const joined = new Uint8Array(kept.length + fresh.length);
      joined.set(kept, 0);
      joined.set(fresh, kept.length);
      this.buf = joined;
    } else this.buf = fresh;
    this.bufStart = this.pos;
  }

  private reader() {
    const at = this.pos - this.bufStart;
    return {
      view: new DataView(this.buf.buffer, this.buf.byteOffset + at, this.buf.length - at),
      offset: 0,
    };
  }

  private async header(): Promise<PageHeader> {
    // A page header is a few dozen bytes, but its statistics may hold min/max values: grow
    // the window until it parses (thrift reads past the view's end throw a RangeError).
    for (let want = Math.min(4096, this.stop - this.pos); ; want *= 4) {
      await this.ensure(Math.min(want, this.stop - this.pos));
      const reader = this.reader();
      try {
        const h = parquetHeader(reader);
        this.pos += reader.offset;
        return h;
      } catch (err) {
        if (!(err instanceof RangeError) || want >= this.stop - this.pos) throw err;
      }
    }
  }

  private async nextPage(): Promise<void> {
    if (this.pos >= this.stop)
      throw new Error(`column ${this.name}: column chunk ended at row ${this.end}`);
    const header = await this.header();
    const size = header.compressed_page_size;
    if (header.type === "DICTIONARY_PAGE") {
      if (header.uncompressed_page_size > this.maxRecordBytes)
        throw new Error(
          `column ${this.name}: dictionary page of ${header.uncompressed_page_size} bytes is over the ${this.maxRecordBytes}-byte limit`,
        );
      await this.ensure(size);
      const { data } = readPage(this.reader(), header, this.decoder, undefined, undefined, 0);
      this.pos += size;
      if (data) this.dictionary = convert(data, this.decoder);
      return;
    }
    const rows =
      header.type === "DATA_PAGE"
        ? header.data_page_header?.num_values
        : header.type === "DATA_PAGE_V2"
          ? header.data_page_header_v2?.num_rows
          : undefined;
    if (rows === undefined) {
      this.pos += size; // index pages and unknown types carry no rows
      return;
    }
    this.first = this.end;
    this.end += rows;
    this.values = [];
    if (header.uncompressed_page_size > this.maxRecordBytes) {
      // Not decoded: one value this large could not become a string, and a page this large
      // is what exhausted memory. Its rows are reported and skipped in every column.
      this.pos += size;
      this.skipReason =
        `column ${this.name}: ${rows === 1 ? "the value is" : `a page of ${rows} rows is`} ` +
        `${header.uncompressed_page_size} bytes, over the ${this.maxRecordBytes}-byte record limit`;
      return;
    }
    this.skipReason = undefined;
    await this.ensure(size);
    const { data } = readPage(this.reader(), header, this.decoder, this.dictionary, undefined, 0);
    this.pos += size;
    this.values = data ?? [];
    if (this.values.length !== rows)
      throw new Error(
        `column ${this.name}: page holds ${this.values.length} values, its header says ${rows}`,
      );
    // drop the read-ahead buffer's reference once it is all consumed
    if (this.pos >= this.bufStart + this.buf.length) this.buf = new Uint8Array(0);
  }
}

/**
 * A group with a nested selected column, through hyparquet's row reader in windows of
 * NESTED_WINDOW_ROWS rows: decoded memory stays bounded, though each window reads the column
 * chunks again. No registered source selects a nested column.
 */
async function* windowedGroup(
  file: AsyncBuffer,
  metadata: FileMetaData,
  columns: string[] | undefined,
  groupStart: number,
  rows: number,
): AsyncGenerator<GroupItem> {
  for (let r = 0; r < rows; r += NESTED_WINDOW_ROWS) {
    const end = Math.min(rows, r + NESTED_WINDOW_ROWS);
    const objects = await parquetReadObjects({
      file,
      metadata,
      columns,
      rowStart: groupStart + r,
      rowEnd: groupStart + end,
      compressors,
    });
    for (let i = 0; i < objects.length; i++)
      yield { row: r + i, value: objects[i] as Record<string, unknown> };
  }
}
