/**
 * Checkpoint directories inside a stage directory:
 *
 *   <stage>/checkpoints/step-000000001500/{config.json, model.safetensors,
 *                                          optimizer.safetensors, trainer-state.json}
 *
 * Names carry the global optimizer step zero-padded to 12 digits, so they sort correctly as
 * strings for any realistic run (the reference's iter-{n:06d} broke at 7 digits); listing also
 * parses the number, so order never depends on string sorting. A checkpoint is written into a
 * hidden temporary directory, every file fsynced, then renamed into place: a crash leaves either
 * the old set or the new one, never a half-written checkpoint under a real name. Only the last
 * `keep` usable checkpoints survive (damaged ones never count toward `keep`).
 *
 * Re-writing an existing step (a damaged checkpoint written again) renames the old directory
 * aside (`.replaced-step-…-<pid>`), renames the new one in, then deletes the old: a kill between
 * the two renames leaves both on disk, and `recoverCheckpoints` (run at start-up) puts the new
 * one (fsynced before the first rename) or else the old one back under the real name.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { pidAlive } from "@tinyllama/data";

const NAME = /^step-(\d{12})$/;
const TMP_PREFIX = ".tmp-";
const ASIDE_PREFIX = ".replaced-";
const TMP_NAME = /^\.tmp-(step-\d{12})-(\d+)$/;
const ASIDE_NAME = /^\.replaced-(step-\d{12})-(\d+)$/;
/** Where start-up moves checkpoints found damaged (inside the checkpoints directory). */
export const DAMAGED_DIR = "damaged";
/** Exit code of `pnpm train` when a checkpoint did not fit on the disk (launcher.ts reads it). */
export const EXIT_DISK_FULL = 3;

export function checkpointName(step: number): string {
  if (!Number.isInteger(step) || step < 0 || step >= 1e12) {
    throw new Error(`checkpoint step must be an integer in [0, 1e12), got ${step}`);
  }
  return `step-${String(step).padStart(12, "0")}`;
}

export interface CheckpointRef {
  step: number;
  path: string;
}

export function checkpointsDir(stageDir: string): string {
  return join(stageDir, "checkpoints");
}

/** Complete checkpoints of a stage, oldest first. */
export function listCheckpoints(stageDir: string): CheckpointRef[] {
  const dir = checkpointsDir(stageDir);
  if (!existsSync(dir)) return [];
  const out: CheckpointRef[] = [];
  for (const name of readdirSync(dir)) {
    const m = NAME.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    if (!existsSync(join(path, "trainer-state.json"))) continue;
    out.push({ step: Number(m[1]), path });
  }
  return out.sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(stageDir: string): CheckpointRef | null {
  return listCheckpoints(stageDir).at(-1) ?? null;
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Test-only injection points inside `commitCheckpoint` (never set by the trainer itself). */
export const checkpointTestHooks: {
  /** After the writer filled the temporary directory, before it is fsynced (e.g. throw ENOSPC). */
  afterWrite?: (tmpDir: string) => void;
  /** Between renaming the old directory of a re-written step aside and renaming the new one in. */
  betweenRenames?: (finalDir: string) => void;
} = {};

/** A checkpoint that did not fit on the disk (ENOSPC/EDQUOT), explained. */
export class CheckpointSpaceError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = "CheckpointSpaceError";
    this.code = code;
  }
}

export function isNoSpaceError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** Bytes of the files directly inside `dir` (a checkpoint directory). */
function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir)) {
    const st = statSync(join(dir, f));
    if (st.isFile()) n += st.size;
  }
  return n;
}

function formatBytes(b: number): string {
  if (b >= 2 ** 30) return `${(b / 2 ** 30).toFixed(1)} GiB`;
  if (b >= 2 ** 20) return `${(b / 2 ** 20).toFixed(1)} MiB`;
  return `${(b / 2 ** 10).toFixed(1)} KiB`;
}

function explainNoSpace(
  e: NodeJS.ErrnoException,
  stageDir: string,
  name: string,
  keep: number,
  approxBytes: number | undefined,
): CheckpointSpaceError {
  const dir = checkpointsDir(stageDir);
  const newest = latestCheckpoint(stageDir);
  let one = approxBytes ?? null;
  try {
    if (newest) one = dirBytes(newest.path);
  } catch {
    // the estimate stays
  }
  let free = "";
  try {
    const fs = statfsSync(dir);
    free = `; ${formatBytes(fs.bavail * fs.bsize)} is free there now`;
  } catch {
    // unknown
  }
  const size = one !== null ? `about ${formatBytes(one)}` : "as much as the model and optimizer";
  const total = one !== null ? ` (about ${formatBytes(one * (keep + 1))})` : "";
  return new CheckpointSpaceError(
    `${e.code === "EDQUOT" ? "disk quota exceeded" : "no space left on the device"} while writing checkpoint ${name} ` +
      `into ${dir} (${e.message}); its temporary directory was removed and no checkpoint was lost. ` +
      `One checkpoint of this run takes ${size}, and with --keep ${keep} there must be room for ${keep + 1} of them at once${total}: ` +
      `older ones are deleted only after a new one is written${free}. ` +
      `Free space on that filesystem (e.g. delete other files there, or older checkpoints of finished stages), ` +
      `then rerun the same command to resume from ${newest ? newest.path : "the start of the stage"}`,
    e.code ?? "ENOSPC",
  );
}

export interface CommitOptions {
  /** The checkpoint's expected size, for the message when it does not fit (ENOSPC). */
  approxBytes?: number;
  /** Whether an existing checkpoint is usable (cheap); damaged ones never count toward `keep`. */
  usable?: (path: string) => boolean;
}

/**
 * Writes a checkpoint atomically: `write(tmpDir)` fills a temporary directory, which is then
 * fsynced and renamed to its final name; older checkpoints beyond `keep` are removed. A full
 * disk (ENOSPC/EDQUOT) throws a CheckpointSpaceError saying how much room is needed, and leaves
 * no temporary directory behind.
 */
export function commitCheckpoint(
  stageDir: string,
  step: number,
  keep: number,
  write: (dir: string) => void,
  opts: CommitOptions = {},
): CheckpointRef {
  const dir = checkpointsDir(stageDir);
  const name = checkpointName(step);
  const final = join(dir, name);
  const tmp = join(dir, `${TMP_PREFIX}${name}-${process.pid}`);
  try {
    mkdirSync(dir, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    write(tmp);
    checkpointTestHooks.afterWrite?.(tmp);
    for (const f of readdirSync(tmp)) fsyncPath(join(tmp, f));
    fsyncPath(tmp);
    if (existsSync(final)) {
      // Re-writing this step: the old directory stays until the new one is in place.
      const aside = join(dir, `${ASIDE_PREFIX}${name}-${process.pid}`);
      rmSync(aside, { recursive: true, force: true });
      renameSync(final, aside);
      try {
        checkpointTestHooks.betweenRenames?.(final);
        renameSync(tmp, final);
      } catch (e) {
        if (!existsSync(final)) renameSync(aside, final);
        throw e;
      }
      fsyncPath(dir);
      rmSync(aside, { recursive: true, force: true });
    } else {
      renameSync(tmp, final);
    }
    fsyncPath(dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (isNoSpaceError(e)) {
      throw explainNoSpace(e as NodeJS.ErrnoException, stageDir, name, keep, opts.approxBytes);
    }
    throw e;
  }
  prune(stageDir, keep, opts.usable);
  return { step, path: final };
}

/**
 * Repairs what a killed writer left in a stage's checkpoints directory (call before listing;
 * only the process that writes checkpoints should): a re-write of a step interrupted between
 * its two renames gets its new directory (complete and fsynced) or else the old one back under
 * the real name; temporary directories of writers that are gone are deleted. Returns what it
 * did, one line each, for the log.
 */
export function recoverCheckpoints(stageDir: string): string[] {
  const dir = checkpointsDir(stageDir);
  if (!existsSync(dir)) return [];
  const said: string[] = [];
  for (const entry of readdirSync(dir)) {
    const m = ASIDE_NAME.exec(entry);
    if (!m || pidAlive(Number(m[2]))) continue;
    const aside = join(dir, entry);
    const final = join(dir, m[1]!);
    const tmp = join(dir, `${TMP_PREFIX}${m[1]}-${m[2]}`);
    if (existsSync(join(final, "trainer-state.json"))) {
      rmSync(aside, { recursive: true, force: true });
      said.push(`removed ${aside}: the checkpoint that replaced it is in place`);
    } else if (existsSync(join(tmp, "trainer-state.json"))) {
      // The new directory was fsynced before the old one was renamed aside.
      rmSync(final, { recursive: true, force: true });
      renameSync(tmp, final);
      rmSync(aside, { recursive: true, force: true });
      said.push(`completed an interrupted re-write of ${final} (process ${m[2]} was killed)`);
    } else {
      rmSync(final, { recursive: true, force: true });
      renameSync(aside, final);
      said.push(`restored ${final} from ${aside} (process ${m[2]} was killed re-writing it)`);
    }
  }
  for (const p of removeStaleTemporaries(stageDir)) {
    said.push(`removed ${p}, a temporary checkpoint directory of a process that is gone`);
  }
  if (said.length > 0) fsyncPath(dir);
  return said;
}

/** Deletes temporary directories of writers (other pids) that are no longer running. */
function removeStaleTemporaries(stageDir: string): string[] {
  const dir = checkpointsDir(stageDir);
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const m = TMP_NAME.exec(name);
    if (!m || pidAlive(Number(m[2]))) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      rmSync(p, { recursive: true, force: true });
      removed.push(p);
    }
  }
  return removed;
}

/**
 * Keeps the newest `keep` usable checkpoints and deletes the older ones. A damaged checkpoint
 * (per `usable`) newer than those is left alone and not counted: it must not push a good one out.
 */
function prune(stageDir: string, keep: number, usable?: (path: string) => boolean): void {
  let good = 0;
  for (const c of listCheckpoints(stageDir).reverse()) {
    if (good >= keep) rmSync(c.path, { recursive: true, force: true });
    else if (!usable || usable(c.path)) good++;
  }
  // Temporary directories of crashed writers (other pids that are gone) are garbage.
  removeStaleTemporaries(stageDir);
}
