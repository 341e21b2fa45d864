/**
 * Streaming record readers. Each yields `{ record, line|row }` for one input file and reports
 * bad records (invalid JSON, invalid UTF-8, non-object lines, corrupt compression, truncated
 * parquet) to a BadRecordLog with the file and line/offset. Memory stays bounded: jsonl is read
 * in 256 KiB slices, parquet one page per column at a time (parquet.ts).
 */
import { isUtf8 } from "node:buffer";
import { createReadStream } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { BadRecordError, type BadRecordLog } from "../document.js";
import { MAX_RECORD_BYTES, rethrowSystemError } from "./limits.js";
import { readParquetRows } from "./parquet.js";

export { MAX_RECORD_BYTES } from "./limits.js";

// zstd-napi is native: it is loaded on the first .zst read, so code that only reads shards or
// jsonl/parquet (the trainer and eval bundles on the GPU machines) never needs its binary.
// The low-level binding, not its DecompressStream: that Transform pushes what it decoded and
// then fails the stream, and a destroyed stream drops the pushed output unread, so one byte of
// trailing garbage lost every record decoded from the last 256 KiB read (the whole file when
// it fit in one read).
type ZstdBinding = typeof import("zstd-napi/binding.js");
let zstdModule: Promise<ZstdBinding> | undefined;
function zstd(): Promise<ZstdBinding> {
  zstdModule ??= import("zstd-napi/binding.js").then(
    (m) => ((m as { default?: ZstdBinding }).default ?? m) as ZstdBinding,
  );
  return zstdModule;
}

export type InputFormat = "jsonl" | "jsonl.zst" | "parquet";

export interface RawRecord {
  value: Record<string, unknown>;
  /** 1-based line (jsonl) */
  line?: number;
  /** 0-based row (parquet) */
  row?: number;
  /** Byte size of the record as stored (uncompressed line bytes / text bytes). */
  bytes: number;
}

export function formatOf(path: string): InputFormat {
  if (path.endsWith(".jsonl.zst") || path.endsWith(".json.zst")) return "jsonl.zst";
  if (path.endsWith(".jsonl") || path.endsWith(".json")) return "jsonl";
  if (path.endsWith(".parquet")) return "parquet";
  throw new Error(`${path}: unknown input format (expected .jsonl, .jsonl.zst or .parquet)`);
}

export interface ReadOptions {
  /** Shown in error messages instead of the local path (e.g. the hub path). */
  displayName?: string;
  /** Columns to read (parquet); all if omitted. */
  columns?: string[];
  /**
   * A line (jsonl) or value (parquet) longer than this is reported and skipped (default
   * MAX_RECORD_BYTES).
   */
  maxRecordBytes?: number;
  /** Counts of harmless oddities fixed while reading (reported in the task stats). */
  counters?: ReadCounters;
}

export interface ReadCounters {
  /** jsonl files that began with a UTF-8 byte order mark (EF BB BF), stripped. */
  utf8Boms: number;
}

export async function* readRecords(
  path: string,
  format: InputFormat,
  bad: BadRecordLog,
  options: ReadOptions = {},
): AsyncGenerator<RawRecord> {
  const name = options.displayName ?? path;
  const maxRecordBytes = options.maxRecordBytes ?? MAX_RECORD_BYTES;
  if (format === "parquet") {
    yield* readParquetRows(path, bad, {
      displayName: name,
      columns: options.columns,
      maxRecordBytes,
    });
    return;
  }
  const end: StreamEnd = { readBytes: 0 };
  let stream: AsyncIterable<Buffer>;
  if (format === "jsonl.zst") stream = decodeZstd(path, await zstd(), end);
  else {
    const file = createReadStream(path, { highWaterMark: READ_BYTES });
    stream = (async function* () {
      for await (const chunk of file) {
        yield chunk as Buffer;
        end.readBytes = file.bytesRead;
      }
    })();
  }
  yield* splitJsonLines(stream, path, name, bad, end, maxRecordBytes, options.counters);
}

/** Bytes per read of an input file. */
const READ_BYTES = 256 << 10;

/** How a byte stream ended, filled in by its producer for splitJsonLines. */
interface StreamEnd {
  /** Bytes of the file read so far (compressed for .zst). */
  readBytes: number;
  /** Set when a .zst file is damaged: nothing after `compressedOffset` could be decoded. */
  damage?: {
    kind: "trailing" | "corrupt" | "truncated";
    /** Where the undecodable data starts: the first byte after the last decoded block/frame. */
    compressedOffset: number;
    bytesUnreadable: number;
    message: string;
  };
}

/**
 * Decodes a .zst file (any number of frames) into decompressed pieces. The yielded buffer is
 * reused for the next piece: the consumer must be done with it (splitJsonLines copies what it
 * keeps) before asking for the next. Damage does not throw: every byte decoded before it is
 * yielded, then `end.damage` says where and why the rest is unreadable.
 */
async function* decodeZstd(path: string, z: ZstdBinding, end: StreamEnd): AsyncGenerator<Buffer> {
  const fh = await open(path, "r");
  // the read in flight; settled before the file closes (the consumer may stop early)
  let next: Promise<{ bytesRead: number }> | undefined;
  try {
    const size = (await fh.stat()).size;
    // A frame whose content checksum fails decoded to wrong bytes somewhere, and its records
    // would already be downstream when the check fails at the frame's end: find such a frame
    // first, and read only up to its start (it is reported as the damage).
    const badFrame = await firstChecksumFailure(fh, z, size);
    const stop = badFrame ?? size;
    const dctx = new z.DCtx();
    const out = Buffer.allocUnsafe(z.dStreamOutSize());
    // two read buffers: the next read runs on libuv's pool while this one is decoded
    const bufs = [Buffer.allocUnsafe(READ_BYTES), Buffer.allocUnsafe(READ_BYTES)];
    let which = 0;
    let pos = 0; // compressed offset of the next read
    next = fh.read(bufs[0] as Buffer, 0, Math.min(READ_BYTES, stop), 0);
    let decoded = 0; // decompressed bytes yielded
    const frame = { c: 0, d: 0 }; // compressed/decompressed offset where the current frame began
    let inFrame = false;
    for (;;) {
      const { bytesRead } = await next;
      if (bytesRead === 0) break;
      let src = (bufs[which] as Buffer).subarray(0, bytesRead);
      let at = pos; // compressed offset of src[0]
      pos += bytesRead;
      end.readBytes = pos;
      which ^= 1;
      next = fh.read(bufs[which] as Buffer, 0, Math.min(READ_BYTES, stop - pos), pos);
      for (;;) {
        let r: [number, number, number];
        try {
          r = dctx.decompressStream(out, src);
        } catch (err) {
          await next.catch(() => undefined);
          next = undefined;
          // The failed call's own output is lost with it (zstd reports it only on success):
          // decode again from where the frame began, byte by byte over the damaged stretch.
          const from = Math.max(frame.c, at - READ_BYTES);
          // (if decoding again somehow passes the damage, it is reported where this call began)
          const message = (err as Error).message;
          yield* redecode(fh, z, size, frame, from, pos, decoded, end, { message, at });
          return;
        }
        const [ret, produced, consumed] = r;
        src = src.subarray(consumed);
        at += consumed;
        if (produced > 0) {
          decoded += produced;
          yield out.subarray(0, produced);
        }
        // 0: a frame is complete and flushed; the next byte (if any) starts another frame
        inFrame = ret !== 0;
        if (!inFrame) {
          frame.c = at;
          frame.d = decoded;
        }
        if (src.length === 0 && (produced < out.length || ret === 0)) break;
      }
    }
    if (inFrame) {
      // A truncated file: all it decoded was yielded; find where the last whole block ended
      // (a block is at most 128 KiB compressed, so it lies in the last 256 KiB)
      const from = Math.max(frame.c, size - READ_BYTES);
      const message = "the file ends inside a zstd frame";
      yield* redecode(fh, z, size, frame, from, size, decoded, end, { message });
    } else if (badFrame !== undefined) {
      const message =
        "the frame fails its content checksum (it decodes to wrong bytes somewhere), so none of it is kept";
      end.damage = damage(size, badFrame, badFrame, message, "corrupt");
    }
  } finally {
    await next?.catch(() => undefined);
    await fh.close();
  }
}

/** zstd's message for a frame whose decoded content does not match its XXH64 checksum. */
const CHECKSUM_WRONG = /checksum/i;

/**
 * Decodes the whole file, discarding the output, and returns the compressed offset where the
 * first frame that fails its content checksum begins, or undefined (no checksum failure, or
 * another error first: the main pass locates that one itself). zstd checks a frame's checksum
 * only after its last block, so a corrupt block it cannot detect (damaged literals) is found
 * only here. Costs one more decompression of the file, a small part of a task's time.
 */
async function firstChecksumFailure(
  fh: FileHandle,
  z: ZstdBinding,
  size: number,
): Promise<number | undefined> {
  const dctx = new z.DCtx();
  const out = Buffer.allocUnsafe(z.dStreamOutSize());
  const buf = Buffer.allocUnsafe(READ_BYTES);
  let frameStart = 0;
  for (let pos = 0; pos < size; ) {
    const { bytesRead } = await fh.read(buf, 0, READ_BYTES, pos);
    if (bytesRead === 0) break;
    let src = buf.subarray(0, bytesRead);
    pos += bytesRead;
    for (;;) {
      let r: [number, number, number];
      try {
        r = dctx.decompressStream(out, src);
      } catch (err) {
        return CHECKSUM_WRONG.test((err as Error).message) ? frameStart : undefined;
      }
      src = src.subarray(r[2]);
      if (r[0] === 0) frameStart = pos - src.length;
      if (src.length === 0 && (r[1] < out.length || r[0] === 0)) break;
    }
  }
  return undefined;
}

function damage(
  size: number,
  frameStart: number,
  at: number,
  message: string,
  kind: "trailing" | "corrupt" | "truncated",
): NonNullable<StreamEnd["damage"]> {
  const c = Math.max(frameStart, Math.min(at, size));
  return { kind, compressedOffset: c, bytesUnreadable: size - c, message };
}

/**
 * Decodes the current frame again with a fresh context: in large steps from its start up to
 * `from`, then one compressed byte per call up to `to`, yielding only output past `delivered`
 * (what the first pass already yielded). One byte per call makes each call decode at most one
 * block, so the output of every block before the damage comes out, and the damage is located
 * to the block: it starts after the last byte that completed a block or a frame. Runs only on
 * a damaged file; the stretch fed byte by byte is at most 512 KiB. Sets `end.damage`: the
 * error found, or, when `to` is reached without one, a truncated file (`first.at` unset) or
 * the first pass's error at `first.at`.
 */
async function* redecode(
  fh: FileHandle,
  z: ZstdBinding,
  size: number,
  frame: { c: number; d: number },
  from: number,
  to: number,
  delivered: number,
  end: StreamEnd,
  first: { message: string; at?: number },
): AsyncGenerator<Buffer> {
  const dctx = new z.DCtx();
  const out = Buffer.allocUnsafe(z.dStreamOutSize());
  let total = frame.d; // decompressed offset reached by this pass
  const buf = Buffer.allocUnsafe(Math.max(READ_BYTES, to - from));
  let frameStart = frame.c;
  let frameStartD = frame.d;
  // large steps: everything here was decoded and yielded by the first pass already
  for (let p = frame.c; p < from; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(READ_BYTES, from - p), p);
    if (bytesRead === 0) break;
    let src = buf.subarray(0, bytesRead);
    p += bytesRead;
    for (;;) {
      let r: [number, number, number];
      try {
        r = dctx.decompressStream(out, src);
      } catch (err) {
        end.damage = damage(size, frameStart, p - src.length, (err as Error).message, "corrupt");
        return;
      }
      src = src.subarray(r[2]);
      total += r[1];
      if (r[0] === 0) {
        frameStart = p - src.length;
        frameStartD = total;
      }
      if (src.length === 0 && (r[1] < out.length || r[0] === 0)) break;
    }
  }
  // compressed offset after the last byte that completed a block or a frame
  let lastGood = Math.max(frameStart, from);
  const { bytesRead } = await fh.read(buf, 0, to - from, from);
  for (let i = 0; i < bytesRead; i++) {
    let src = buf.subarray(i, i + 1);
    for (;;) {
      let r: [number, number, number];
      try {
        r = dctx.decompressStream(out, src);
      } catch (err) {
        // nothing of this frame decoded, after a complete one: data after a valid frame
        const trailing = frameStart > 0 && lastGood === frameStart && total === frameStartD;
        const kind = trailing ? "trailing" : "corrupt";
        end.damage = damage(size, frameStart, lastGood, (err as Error).message, kind);
        return;
      }
      const [ret, produced, consumed] = r;
      src = src.subarray(consumed);
      if (produced > 0) {
        lastGood = from + i + 1;
        const skip = Math.max(0, Math.min(produced, delivered - total));
        total += produced;
        if (skip < produced) yield Buffer.from(out.subarray(skip, produced));
      }
      if (ret === 0) {
        frameStart = from + i + 1;
        frameStartD = total;
        lastGood = frameStart;
      }
      if (src.length === 0 && (produced < out.length || ret === 0)) break;
    }
  }
  end.damage =
    first.at === undefined
      ? damage(size, frameStart, lastGood, first.message, "truncated")
      : damage(size, frame.c, first.at, first.message, "corrupt");
}

/**
 * Cuts a byte stream into lines. A line that spans reads is kept as a list of the pieces and
 * joined once at its newline: joining the carried bytes with every new 256 KiB read instead
 * made a long line quadratic (a 64 MB document took 7.9 s, against 0.19 s for 8 MB).
 */
async function* splitJsonLines(
  stream: AsyncIterable<Buffer>,
  path: string,
  name: string,
  bad: BadRecordLog,
  end: StreamEnd,
  maxRecordBytes: number,
  counters: ReadCounters | undefined,
): AsyncGenerator<RawRecord> {
  let pieces: Buffer[] = []; // the unfinished line's bytes from earlier reads (copies)
  let pieceBytes = 0;
  let skipping = false; // the unfinished line is over maxRecordBytes: drop it up to its newline
  let line = 0;
  let lineStart = 0; // byte offset (decompressed) of the unfinished line's first byte
  let offset = 0; // byte offset (decompressed) of the current read's first byte
  let sawData = false;
  let nonBlank = false; // a line other than a blank one was seen (a record or a bad one)
  // the record of one line, or why it is not one (undefined for a blank line)
  const parse = (bytes: Buffer, lineNo: number): RawRecord | string | undefined => {
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 13) end--; // CRLF
    let start = 0;
    // A UTF-8 byte order mark (Windows tools write one) is not part of the first record: it
    // made JSON.parse reject an otherwise valid first line. Only at decompressed offset 0.
    if (lineNo === 1 && end >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      start = 3;
      if (counters) counters.utf8Boms++;
    }
    if (end === start) return undefined; // blank line: not a record
    nonBlank = true;
    const line = bytes.subarray(start, end);
    // native validation then a plain decode: ~2x faster than a fatal TextDecoder
    if (!isUtf8(line)) return "invalid UTF-8";
    const text = line.toString("utf8");
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return `invalid JSON: ${(err as Error).message}`;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value))
      return "line is not a JSON object";
    return {
      value: value as Record<string, unknown>,
      line: lineNo,
      bytes: bytes.length + 1 - start,
    };
  };
  const handle = (bytes: Buffer, lineNo: number, at: number): RawRecord | undefined => {
    const r = parse(bytes, lineNo);
    if (typeof r !== "string") return r;
    bad.report({ file: name, line: lineNo, offset: at, reason: r });
    return undefined;
  };
  const tooLong = (lineNo: number, at: number) => {
    nonBlank = true;
    bad.report({
      file: name,
      line: lineNo,
      offset: at,
      reason: `line longer than ${maxRecordBytes} bytes (the longest record read); skipped`,
    });
  };
  try {
    for await (const chunk of stream) {
      sawData ||= chunk.length > 0;
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(10, start);
        if (nl < 0) break;
        line++;
        if (skipping) skipping = false;
        else if (pieceBytes + nl - start > maxRecordBytes) tooLong(line, lineStart);
        else {
          const tail = chunk.subarray(start, nl);
          const bytes =
            pieceBytes > 0 ? Buffer.concat([...pieces, tail], pieceBytes + tail.length) : tail;
          const rec = handle(bytes, line, lineStart);
          if (rec) yield rec;
        }
        pieces = [];
        pieceBytes = 0;
        start = nl + 1;
        lineStart = offset + start;
      }
      if (!skipping && start < chunk.length) {
        if (pieceBytes + chunk.length - start > maxRecordBytes) {
          tooLong(line + 1, lineStart);
          skipping = true;
          pieces = [];
          pieceBytes = 0;
        } else {
          // copy: the read's memory is reused (the zstd decoder's output buffer)
          pieces.push(Buffer.from(chunk.subarray(start)));
          pieceBytes += chunk.length - start;
        }
      }
      offset += chunk.length;
    }
  } catch (err) {
    if (err instanceof BadRecordError) throw err; // --strict: a record's own error, not the file's
    rethrowSystemError(err, name);
    const size = await stat(path).then(
      (s) => s.size,
      () => end.readBytes,
    );
    bad.report({
      file: name,
      line: line + 1,
      offset: lineStart,
      reason: `read error after line ${line}: ${(err as Error).message}; the rest of the file is unreadable`,
      bytesUnreadable: Math.max(0, size - end.readBytes),
    });
    return;
  }
  const damage = end.damage;
  let partial = "";
  if (pieceBytes > 0) {
    // The last line has no newline. At damage it is kept only if it is a whole record (a
    // valid frame can end without a newline); a line cut by the damage is part of the loss,
    // not a separate "invalid JSON" bad record.
    const bytes = Buffer.concat(pieces, pieceBytes);
    if (!damage) {
      const rec = handle(bytes, line + 1, lineStart);
      line++;
      if (rec) yield rec;
    } else {
      const rec = parse(bytes, line + 1);
      if (rec !== undefined && typeof rec !== "string") {
        line++;
        yield rec;
      } else partial = ` and a partial line of ${pieceBytes} bytes`;
    }
  }
  if (damage) {
    const what = {
      trailing: "trailing data or a corrupt frame after the last complete zstd frame",
      corrupt: "corrupt zstd frame",
      truncated: "truncated zstd file",
    }[damage.kind];
    bad.report({
      file: name,
      line: line + 1,
      offset,
      compressedOffset: damage.compressedOffset,
      bytesUnreadable: damage.bytesUnreadable,
      reason:
        `${what} at compressed byte ${damage.compressedOffset} (decompressed offset ${offset}) ` +
        `after ${line} complete lines${partial}: ${damage.message}; ` +
        `the rest of the file (${damage.bytesUnreadable} compressed bytes) is unreadable`,
    });
    return;
  }
  // a file of blank lines holds no records either: reported as empty, never passed silently
  if (!nonBlank) {
    const reason = sawData
      ? `empty file: no records (${line} blank lines)`
      : "empty file: no records";
    bad.report({ file: name, offset: 0, reason });
  }
}
