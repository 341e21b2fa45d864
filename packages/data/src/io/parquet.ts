/**
 * Parquet rows, one row group at a time (StarCoderData files run to hundreds of MB; a row
 * group is what pyarrow wrote as one unit). Reads go through positional reads on one fd.
 */
import { open } from "node:fs/promises";
import type { AsyncBuffer, FileMetaData } from "hyparquet";
import { parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { compressors as allCompressors } from "hyparquet-compressors";
import type { BadRecordLog } from "../document.js";
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

export async function* readParquetRows(
  path: string,
  bad: BadRecordLog,
  options: { displayName?: string; columns?: string[] } = {},
): AsyncGenerator<RawRecord> {
  const name = options.displayName ?? path;
  const fh = await open(path, "r");
  try {
    const { size } = await fh.stat();
    if (size === 0) {
      bad.report({ file: name, offset: 0, reason: "empty file: no records" });
      return;
    }
    const file: AsyncBuffer = {
      byteLength: size,
      async slice(start: number, end?: number) {
        const stop = end ?? size;
        const out = new Uint8Array(stop - start);
        let done = 0;
        while (done < out.length) {
          const { bytesRead } = await fh.read(out, done, out.length - done, start + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return out.buffer;
      },
    };
    let metadata: FileMetaData;
    try {
      metadata = await parquetMetadataAsync(file);
    } catch (err) {
      bad.report({
        file: name,
        offset: size,
        reason: `not a readable parquet file (truncated or corrupt footer): ${(err as Error).message}`,
      });
      return;
    }
    const available = new Set(metadata.schema.slice(1).map((s) => s.name));
    const columns = options.columns?.filter((c) => available.has(c));
    let rowStart = 0;
    for (const [g, group] of metadata.row_groups.entries()) {
      const rows = Number(group.num_rows);
      let objects: Record<string, unknown>[];
      try {
        objects = await parquetReadObjects({
          file,
          metadata,
          columns,
          rowStart,
          rowEnd: rowStart + rows,
          compressors,
        });
      } catch (err) {
        bad.report({
          file: name,
          row: rowStart,
          reason: `row group ${g} (${rows} rows) unreadable: ${(err as Error).message}`,
        });
        rowStart += rows;
        continue;
      }
      for (let i = 0; i < objects.length; i++) {
        const value = objects[i] as Record<string, unknown>;
        const text = value.content ?? value.text;
        yield {
          value,
          row: rowStart + i,
          bytes: typeof text === "string" ? Buffer.byteLength(text) : 0,
        };
      }
      rowStart += rows;
    }
  } finally {
    await fh.close();
  }
}
