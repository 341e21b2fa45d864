// What every data bench report shares: when, where and at which commit it ran, and the median
// its tables quote. BENCH_COMMIT names the commit where there is no git checkout (the bundle
// that runs on the GPU machines).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { cpus } from "node:os";
import { basename, dirname, join } from "node:path";
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

// Outputs of earlier passes are moved aside, not deleted, until the measuring is over. ext4
// without a journal (the dev VM's root filesystem) will not reuse an inode freed in the last
// 30 s (dirty_expire): each new file walks past every recently freed one, reading its
// inode-table block. Deleting the last pass's ~280 files just before a pass made its own ~280
// creations pay for that: 8.6% of the pipeline's CPU samples (perf, kernel
// recently_deleted / find_get_block_common), against 2.8% with nothing deleted beforehand. A
// real run does not delete a whole output before writing one; the pipeline's own deletions
// (the token spools) still count, as they should.
const TRASH = ".bench-trash";
let retired = 0;

/** Moves `dir` (if present) into `<parent>/.bench-trash/`, freeing no inode. @param {string} dir */
export function retire(dir) {
  if (!existsSync(dir)) return;
  const trash = join(dirname(dir), TRASH);
  mkdirSync(trash, { recursive: true });
  renameSync(dir, join(trash, `${basename(dir)}-${process.pid}-${retired++}`));
}

/** Deletes what `retire` moved aside under `parent`: call once nothing is being timed. @param {string} parent */
export function emptyTrash(parent) {
  rmSync(join(parent, TRASH), { recursive: true, force: true });
}
