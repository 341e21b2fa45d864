/**
 * The longest record read (256 MiB), shared by the jsonl and parquet readers. A longer jsonl
 * line is reported as a bad record and skipped up to its newline, so a file with no newlines
 * (binary data under a .jsonl name, a truncated download) cannot take all memory, and no line
 * reaches V8's string limit (2^29 - 24 UTF-16 units), which `toString` would throw on. A
 * parquet value (page) over it is reported with its row and skipped undecoded.
 */
export const MAX_RECORD_BYTES = 256 << 20;
