/**
 * Right after the rendezvous, before any collective of training: every rank checks that it was
 * started with the settings the others were (a node started with another --seed, --lr-max,
 * --stage, --model, --data shards, --out, --sharding, ... would otherwise train with diverging
 * math or data, or fail later with a bare "collective mismatch"), and that --out is one
 * directory every rank sees (rank 0 writes checkpoints there, every rank reads them on resume).
 * On a mismatch every rank stops with the same message naming the flag, rank 0's value and the
 * first rank that differs, with their nodes.
 *
 * Cost on the happy path: two host reductions of a few numbers (the settings are compared by
 * hash; only a mismatch exchanges the values).
 */
import { createHash, randomInt } from "node:crypto";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../cli/args.js";
import type { ShardGroups } from "./sharded.js";

export interface Setting {
  /** How the user sets it, e.g. "--seed". */
  flag: string;
  /** What is compared between ranks. */
  value: string;
  /** What the message shows (default: value), e.g. a path with the fingerprint of its contents. */
  shown?: string;
}

/** Ranks started with different settings, or an --out that is not shared. Exit 2 (a usage error). */
export class SettingsMismatchError extends UsageError {
  override name = "SettingsMismatchError";
}

/** 52 bits of SHA-256: exact in a float64, so host reductions carry it unchanged. */
function hash52(s: string): number {
  return Number.parseInt(createHash("sha256").update(s).digest("hex").slice(0, 13), 16);
}

/** How long a rank looks for rank 0's file in --out (TINYLLAMA_OUT_VISIBLE_SECONDS, default 3). */
function visibleSeconds(): number {
  const v = Number(process.env.TINYLLAMA_OUT_VISIBLE_SECONDS ?? "3");
  return Number.isFinite(v) && v >= 0 ? v : 3;
}

/** Longest value (in UTF-16 units) exchanged per setting when naming a mismatch. */
const SHOWN_CAP = 400;

function encode(s: string, into: number[], at: number): void {
  const t = s.length > SHOWN_CAP ? `${s.slice(0, SHOWN_CAP - 1)}…` : s;
  for (let i = 0; i < t.length; i++) into[at + i] = t.charCodeAt(i);
}

function decode(a: Float64Array, at: number): string {
  let s = "";
  for (let i = 0; i < SHOWN_CAP; i++) {
    const c = a[at + i]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * Throws SettingsMismatchError on every rank when some rank's settings differ from rank 0's or,
 * with `sharedDir`, when some rank does not see a file rank 0 writes there. Every rank must call
 * it with the same number of settings, in the same order (the same code does).
 */
export async function agreeOnSettings(
  world: ShardGroups["world"],
  hostIds: readonly string[],
  settings: readonly Setting[],
  sharedDir?: string,
): Promise<void> {
  const W = world.size;
  const K = settings.length;
  const me = world.rank;
  const node = (r: number) => `rank ${r} (${hostIds[r] ?? "?"})`;
  // 1. Rank 0's hashes (and, with sharedDir, the name of the file it wrote there) to everyone.
  const token = me === 0 ? randomInt(1, 2 ** 47) : 0;
  const marker = (t: number) => join(sharedDir!, `.tinyllama-shared-${t.toString(36)}`);
  if (sharedDir && me === 0) {
    mkdirSync(sharedDir, { recursive: true });
    writeFileSync(marker(token), `written by rank 0 (${hostIds[0] ?? "?"}) at start-up\n`);
  }
  const mine = settings.map((s) => hash52(s.value));
  const root = await world.allReduceHost([...(me === 0 ? mine : mine.map(() => 0)), token], "sum");
  // 2. Which settings differ where (lowest differing rank per setting), and who cannot see --out.
  const differs = mine.map((h, i) => h !== root[i]);
  let missing = false;
  if (sharedDir && me !== 0 && !differs.some((d) => d)) {
    // A file just created on a network filesystem can take a moment to show on other clients
    // (TINYLLAMA_OUT_VISIBLE_SECONDS, default 3, for a filesystem slower than that).
    const file = marker(root[K]!);
    const tries = Math.ceil(10 * visibleSeconds());
    for (let t = 0; ; t++) {
      missing = !existsSync(file);
      if (!missing || t >= tries) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const flags = await world.allReduceHost(
    [...differs.map((d) => (d ? W - me : 0)), missing ? W - me : 0],
    "max",
  );
  if (sharedDir && me === 0) rmSync(marker(token), { force: true });
  const bad = settings.map((_, i) => i).filter((i) => flags[i]! > 0);
  if (bad.length > 0) {
    // 3. Only now the values: rank 0's and the first differing rank's, for the settings that differ.
    const values = new Array<number>(bad.length * 2 * SHOWN_CAP).fill(0);
    bad.forEach((i, j) => {
      const s = settings[i]!;
      if (me === 0) encode(s.shown ?? s.value, values, 2 * j * SHOWN_CAP);
      if (me === W - flags[i]!) encode(s.shown ?? s.value, values, (2 * j + 1) * SHOWN_CAP);
    });
    const got = await world.allReduceHost(values, "sum");
    const lines = bad.map((i, j) => {
      const other = W - flags[i]!;
      return (
        `${settings[i]!.flag}: ${node(0)} has ${decode(got, 2 * j * SHOWN_CAP)}, ` +
        `${node(other)} has ${decode(got, (2 * j + 1) * SHOWN_CAP)}`
      );
    });
    throw new SettingsMismatchError(
      `the ranks were started with different settings (every node must run the same command; only --node-rank, ` +
        `--micro-batch, --recompute and --profile-step may differ): ${lines.join("; ")}`,
    );
  }
  if (flags[K]! > 0) {
    throw new SettingsMismatchError(
      `--out ${sharedDir} is not shared between the nodes: ${node(W - flags[K]!)} does not see the file ${node(0)} ` +
        `wrote there within ${visibleSeconds()} s. --out must be a filesystem every node sees at the same path: rank 0 ` +
        "writes the checkpoints and every rank reads them on resume (a shared filesystem that shows new files later " +
        "than that: set TINYLLAMA_OUT_VISIBLE_SECONDS)",
    );
  }
}
