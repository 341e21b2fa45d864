// What every data bench report shares: when, where and at which commit it ran, and the median
// its tables quote. BENCH_COMMIT names the commit where there is no git checkout (the bundle
// that runs on the GPU machines).
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** The date, machine and commit lines of a report. */
export function runHeader() {
  return {
    date: new Date().toISOString(),
    machine: `${cpus()[0]?.model} x${cpus().length}, node ${process.version}`,
    commit:
      process.env.BENCH_COMMIT ??
      spawnSync("git", ["rev-parse", "--short", "HEAD"], {
        cwd: root,
        encoding: "utf8",
      }).stdout?.trim(),
  };
}

/** Median of a non-empty list (NaN for an empty one). @param {number[]} xs */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? /** @type {number} */ (s[m]) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}
