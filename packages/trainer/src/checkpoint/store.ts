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
 * `keep` checkpoints survive.
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
  statSync,
} from "node:fs";
import { join } from "node:path";

const NAME = /^step-(\d{12})$/;
const TMP_PREFIX = ".tmp-";

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

/**
 * Writes a checkpoint atomically: `write(tmpDir)` fills a temporary directory, which is then
 * fsynced and renamed to its final name; older checkpoints beyond `keep` are removed.
 */
export function commitCheckpoint(
  stageDir: string,
  step: number,
  keep: number,
  write: (dir: string) => void,
): CheckpointRef {
  const dir = checkpointsDir(stageDir);
  mkdirSync(dir, { recursive: true });
  const name = checkpointName(step);
  const tmp = join(dir, `${TMP_PREFIX}${name}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    write(tmp);
    for (const f of readdirSync(tmp)) fsyncPath(join(tmp, f));
    fsyncPath(tmp);
    const final = join(dir, name);
    // Re-saving the same step (e.g. a signal right after a periodic save) replaces it.
    if (existsSync(final)) rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    fsyncPath(dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  prune(stageDir, keep);
  return { step, path: join(dir, name) };
}

function prune(stageDir: string, keep: number): void {
  const all = listCheckpoints(stageDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    rmSync(c.path, { recursive: true, force: true });
  }
  // Temporary directories of crashed writers (other pids) are garbage.
  const dir = checkpointsDir(stageDir);
  for (const name of readdirSync(dir)) {
    if (name.startsWith(TMP_PREFIX) && !name.endsWith(`-${process.pid}`)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) rmSync(p, { recursive: true, force: true });
    }
  }
}
