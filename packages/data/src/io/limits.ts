/**
 * The longest record read (256 MiB), shared by the jsonl and parquet readers. A longer jsonl
 * line is reported as a bad record and skipped up to its newline, so a file with no newlines
 * (binary data under a .jsonl name, a truncated download) cannot take all memory, and no line
 * reaches V8's string limit (2^29 - 24 UTF-16 units), which `toString` would throw on. A
 * parquet value (page) over it is reported with its row and skipped undecoded.
 */
export const MAX_RECORD_BYTES = 256 << 20;

/**
 * An operating-system error while reading an input (EACCES, EIO, EISDIR, ...: Node's system
 * errors carry `syscall`) is not bad data. Counting the rest of the file as unreadable would
 * drop it on a fault that can be fixed (a permission, a failing disk) while the run ends with
 * status 0, so the readers rethrow it naming the file: the task fails, and a rerun resumes once
 * it is fixed. Damaged bytes (a corrupt frame, a truncated file) stay bad records.
 */
export function rethrowSystemError(err: unknown, file: string): void {
  const e = err as NodeJS.ErrnoException | null;
  if (e !== null && typeof e === "object" && typeof e.syscall === "string") {
    throw Object.assign(
      new Error(
        `${file}: cannot read it (${e.message}): a system error, not bad data; fix it and rerun to resume`,
      ),
      { code: e.code },
    );
  }
}
