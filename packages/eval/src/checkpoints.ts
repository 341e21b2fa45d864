/**
 * Finding "the main job's checkpoint": the newest complete checkpoint under ./runs/, in the
 * trainer's layout `runs/<run>/<stage>/checkpoints/step-<12 digits>/` (complete = has
 * trainer-state.json, which the trainer writes last before the atomic rename).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const STEP_DIR = /^step-(\d{12})$/;

export interface FoundCheckpoint {
  path: string;
  step: number;
  mtimeMs: number;
}

export function findCheckpoints(root: string, maxDepth = 5): FoundCheckpoint[] {
  const out: FoundCheckpoint[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith(".")) continue;
      const path = join(dir, e.name);
      const m = STEP_DIR.exec(e.name);
      const state = join(path, "trainer-state.json");
      if (m && existsSync(state) && existsSync(join(path, "config.json"))) {
        out.push({ path, step: Number(m[1]), mtimeMs: statSync(state).mtimeMs });
      } else if (depth < maxDepth) {
        walk(path, depth + 1);
      }
    }
  };
  walk(root, 0);
  return out;
}

/** The most recently written checkpoint under `root` (ties: the higher step). */
export function newestCheckpoint(root: string): FoundCheckpoint {
  const all = findCheckpoints(root);
  if (all.length === 0) {
    throw new Error(
      `no checkpoint under ${root} (looked for <run>/<stage>/checkpoints/step-NNNNNNNNNNNN/ with config.json and trainer-state.json); train first or pass --checkpoint <dir>`,
    );
  }
  return all.sort((a, b) => b.mtimeMs - a.mtimeMs || b.step - a.step)[0]!;
}
