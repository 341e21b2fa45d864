/**
 * Document: the one record type that flows between pipeline steps.
 */
export interface Document {
  /** Stable id: `<source>/<input file>#<line or row>`; the same on every rerun. */
  id: string;
  text: string;
  /** Source name, e.g. "slimpajama". */
  source: string;
  /** Per-corpus metadata kept from the record (e.g. redpajama_set_name, language). */
  meta: Record<string, unknown>;
}

/** Where a bad record or a read error was found. */
export interface RecordLocation {
  file: string;
  /** 1-based line for jsonl, 0-based row for parquet. */
  line?: number;
  row?: number;
  /** Byte offset (in the decompressed stream for .zst) where the problem starts. */
  offset?: number;
  /** .zst only: the byte offset in the compressed file where the problem was found. */
  compressedOffset?: number;
}

export interface BadRecord extends RecordLocation {
  reason: string;
  /**
   * Parquet rows this one report stands for: an unreadable row group or page loses all its
   * rows (known from the metadata), which a count of one bad record would hide.
   */
  rowsLost?: number;
  /** Input bytes that could not be read at all (the rest of a corrupt or truncated .zst file). */
  bytesUnreadable?: number;
}

/**
 * Collects bad records. By default they are skipped, counted and listed in the task report;
 * in strict mode the first one throws. Nothing is skipped silently.
 */
export class BadRecordLog {
  readonly strict: boolean;
  readonly entries: BadRecord[] = [];
  count = 0;
  /** Sum of the reports' `rowsLost`: parquet rows in unreadable row groups or pages. */
  rowsLost = 0;
  /** Sum of the reports' `bytesUnreadable`: input bytes after damage that nothing read. */
  bytesUnreadable = 0;
  /** How many entries are kept verbatim (the count is always exact). */
  readonly keep: number;

  constructor(options: { strict?: boolean; keep?: number } = {}) {
    this.strict = options.strict ?? false;
    this.keep = options.keep ?? 1000;
  }

  report(bad: BadRecord): void {
    if (this.strict) throw new BadRecordError(bad);
    this.count++;
    this.rowsLost += bad.rowsLost ?? 0;
    this.bytesUnreadable += bad.bytesUnreadable ?? 0;
    if (this.entries.length < this.keep) this.entries.push(bad);
  }
}

export function formatLocation(l: RecordLocation): string {
  const parts = [l.file];
  if (l.line !== undefined) parts.push(`line ${l.line}`);
  if (l.row !== undefined) parts.push(`row ${l.row}`);
  if (l.offset !== undefined) parts.push(`byte ${l.offset}`);
  if (l.compressedOffset !== undefined) parts.push(`compressed byte ${l.compressedOffset}`);
  return parts.join(":");
}

export class BadRecordError extends Error {
  override name = "BadRecordError";
  readonly record: BadRecord;
  constructor(bad: BadRecord) {
    super(
      `${formatLocation(bad)}: ${bad.reason} (--strict makes bad records fatal; drop it to skip and count them)`,
    );
    this.record = bad;
  }
}
