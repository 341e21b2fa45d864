/**
 * Which shards a checkpoint's data position refers to. The position is per-source block offsets
 * plus the mixture sampler's state, and a source's block order is a permutation of the blocks
 * its manifest lists: the same offsets over other shards (re-prepared with other settings or
 * more input, another run's shards, another config's subsets) read other blocks, repeating some
 * of those already trained on and skipping others. A checkpoint therefore records, per source
 * of its mixture, a digest of the train split's file list (name, SHA-256 and blocks of each
 * file, as the manifest gives them), and a resume compares it with the shards under --data.
 */
import { createHash } from "node:crypto";
import type { ShardManifest } from "@tinyllama/data";
import type { SourceShards } from "./sources.js";

export interface SourceFingerprint {
  /** SHA-256 over the train split's files in manifest order: name, sha256, blocks. */
  digest: string;
  files: number;
  blocks: number;
  /** The manifest's createdAt (when `pnpm data:prepare` wrote it), for the message. */
  createdAt: string | null;
}

/**
 * The fingerprint of a source's train shards as its manifest lists them: the same files (by
 * name, SHA-256 and blocks) give the same digest, whenever they were prepared. Also what the
 * ranks of a distributed run compare for --data (cli/train-command.ts).
 */
export function manifestFingerprint(manifest: ShardManifest): SourceFingerprint {
  const files = manifest.splits.train?.files ?? [];
  const h = createHash("sha256");
  let blocks = 0;
  for (const f of files) {
    h.update(`${f.name}\u0000${f.sha256}\u0000${f.blocks}\n`);
    blocks += f.blocks;
  }
  const createdAt = manifest.createdAt;
  return {
    digest: h.digest("hex"),
    files: files.length,
    blocks,
    createdAt: typeof createdAt === "string" ? createdAt : null,
  };
}

export function sourceFingerprints(
  sources: Map<string, SourceShards>,
): Record<string, SourceFingerprint> {
  const out: Record<string, SourceFingerprint> = {};
  for (const [name, s] of sources) out[name] = manifestFingerprint(s.train.manifest);
  return out;
}

function describe(f: SourceFingerprint): string {
  return (
    `${f.files} file${f.files === 1 ? "" : "s"}, ${f.blocks} blocks` +
    (f.createdAt ? `, prepared ${f.createdAt}` : "")
  );
}

/**
 * The sources of `names` whose shards differ from those recorded, each as one line
 * (`"slimpajama": 3 files, 132 blocks, prepared … -> 2 files, 127 blocks, prepared …`).
 * Sources the checkpoint did not record are not compared.
 */
export function changedSources(
  saved: Record<string, SourceFingerprint>,
  now: Record<string, SourceFingerprint>,
  names: readonly string[],
): string[] {
  const out: string[] = [];
  for (const name of names) {
    const was = saved[name];
    const is = now[name];
    if (!was || !is || was.digest === is.digest) continue;
    const same = was.files === is.files && was.blocks === is.blocks;
    out.push(
      `"${name}": ${describe(was)} -> ${describe(is)}` +
        (same ? " (same file and block counts, other contents: the files' SHA-256 differ)" : ""),
    );
  }
  return out;
}
