/**
 * The live progress line of a stage (documents, MB, rate, ETA) and the final summary table.
 * On a terminal the line is redrawn in place; otherwise a line is printed every 10 s so logs
 * (Slurm, CI) stay readable.
 */
export interface StageProgressState {
  stage: string;
  tasksTotal: number;
  tasksDone: number;
  tasksSkipped: number;
  docs: number;
  bytes: number;
  inputBytesDone: number;
  inputBytesTotal: number;
  startedAt: number;
}

const fmtTime = (s: number) => {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
};

export function formatProgress(p: StageProgressState, now = performance.now()): string {
  const secs = Math.max(1e-3, (now - p.startedAt) / 1000);
  const mb = p.bytes / 1e6;
  const rate = mb / secs;
  const frac =
    p.inputBytesTotal > 0
      ? p.inputBytesDone / p.inputBytesTotal
      : p.tasksDone / Math.max(1, p.tasksTotal);
  const eta = frac > 0 ? (secs / frac) * (1 - frac) : Number.NaN;
  return `[${p.stage}] tasks ${p.tasksDone}/${p.tasksTotal}${p.tasksSkipped ? ` (${p.tasksSkipped} already done)` : ""}  docs ${p.docs.toLocaleString("en-US")}  ${mb.toFixed(1)} MB  ${rate.toFixed(2)} MB/s  elapsed ${fmtTime(secs)}  ETA ${p.tasksDone === p.tasksTotal ? "0:00" : fmtTime(eta)}`;
}

export class ProgressPrinter {
  private last = 0;
  private readonly tty: boolean;
  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly intervalMs = 10_000,
  ) {
    this.tty = Boolean(out.isTTY);
  }
  update(p: StageProgressState, force = false): void {
    const now = performance.now();
    if (!force && now - this.last < (this.tty ? 250 : this.intervalMs)) return;
    this.last = now;
    const line = formatProgress(p, now);
    if (this.tty) this.out.write(`\r\x1b[2K${line}`);
    else this.out.write(`${line}\n`);
  }
  end(p: StageProgressState): void {
    const line = formatProgress(p);
    this.out.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
    this.last = 0;
  }
}

export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) =>
    r.map((c) => (typeof c === "number" ? c.toLocaleString("en-US") : c)),
  );
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length))) ?? [];
  return cells
    .map((r) =>
      r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  "),
    )
    .join("\n");
}
