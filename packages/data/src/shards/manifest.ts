/**
 * manifest.json: the one file the trainer reads to learn what a shard directory holds.
 * One per source directory (e.g. data/slimpajama/manifest.json), listing the shard files of
 * each split with their sha256 and counts, the tokenizer that produced them, and what the
 * pipeline removed on the way.
 */
export const MANIFEST_FORMAT = "tinyllama-shards/1";
export const MANIFEST_FILE = "manifest.json";

/** Identifies the tokenizer that produced the token ids. Shards from another one are refused. */
export interface TokenizerIdentity {
  /** Human-readable name, e.g. "llama2-sentencepiece". */
  name: string;
  vocabSize: number;
  eosId: number;
  /** Hash of the vocabulary (pieces and ids): the part that must match. */
  hash: string;
}

export interface ShardFileEntry {
  /** File name relative to the manifest's directory. */
  name: string;
  sha256: string;
  bytes: number;
  tokens: number;
  blocks: number;
}

export interface SplitManifest {
  files: ShardFileEntry[];
  /** Documents whose tokens went (wholly or partly) into this split's blocks. */
  documents: number;
  tokens: number;
  blocks: number;
  /** Tokens at the end of the split that did not fill a block: dropped, never padded. */
  droppedTailTokens: number;
}

export interface SourceStats {
  /** Documents read from the inputs. */
  documentsRead: number;
  bytesRead: number;
  /** Documents removed per reason (filter name, "exact-duplicate", "near-duplicate", ...). */
  removed: Record<string, number>;
  /** Bad records skipped (invalid JSON, missing text field, invalid UTF-8, ...). */
  badRecords: number;
  /**
   * Parquet rows lost with unreadable row groups or pages, which count as one bad record
   * each (the row counts come from the file's metadata). Absent in earlier manifests.
   */
  rowsLost?: number;
  /** Input bytes that nothing could read: the rest of each corrupt or truncated .zst file. */
  bytesUnreadable?: number;
  documentsKept: number;
  /**
   * Dedup runs across all sources of a run: of the duplicates in `removed`, those whose kept
   * copy is in another source, per that source and reason (e.g. `{ "slimpajama":
   * { "exact-duplicate": 3 } }`). Empty when nothing was lost to another source; absent
   * without dedup.
   */
  duplicatesOfOtherSources?: Record<string, Record<string, number>>;
}

/** One source of the run that made a shard directory, in the run's order. */
export interface RunSource {
  name: string;
  /** The local root it was read from. */
  local?: string;
  /** The hub repo, the revision the config named, and the commit that revision was read at. */
  hub?: { repo: string; revision: string; commit: string };
}

export interface ShardManifest {
  format: typeof MANIFEST_FORMAT;
  source: string;
  /** Tokens per training example, 2049 (2048 inputs + 1 target). */
  blockSize: number;
  /** Tokens per full shard file; the last file of a split may be shorter (whole blocks). */
  chunkTokens: number;
  dtype: "uint16";
  tokenizer: TokenizerIdentity;
  /** Every document became tokens + [eosId], no BOS. */
  eosAppended: boolean;
  splits: Record<string, SplitManifest>;
  stats: SourceStats;
  /**
   * The pipeline configuration that produced the shards (free-form, for provenance): the
   * whole run's, every source included, since dedup across sources makes each source's
   * shards depend on the others; hub revisions are replaced by the commits that were read,
   * so rerunning it reads the same inputs.
   */
  config: unknown;
  /**
   * Every source of the run in order (which document of a duplicate cluster is kept follows
   * that order), with the hub commit each was read at. Absent in manifests written before it.
   */
  run?: { sources: RunSource[] };
  createdAt: string;
}

export class ManifestError extends Error {
  override name = "ManifestError";
}

/** Parses and checks the shape of a manifest, naming `where` in every error. */
export function parseManifest(json: string, where: string): ShardManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ManifestError(`${where}: manifest is not valid JSON: ${(err as Error).message}`);
  }
  const m = raw as Partial<ShardManifest> | null;
  const fail = (what: string): never => {
    throw new ManifestError(`${where}: invalid manifest: ${what}`);
  };
  if (typeof m !== "object" || m === null) return fail("not an object");
  if (m.format !== MANIFEST_FORMAT) {
    fail(`format is ${JSON.stringify(m.format)}, expected ${JSON.stringify(MANIFEST_FORMAT)}`);
  }
  if (typeof m.source !== "string") fail("missing source");
  if (!isPositiveInt(m.blockSize)) fail("blockSize must be a positive integer");
  if (!isPositiveInt(m.chunkTokens)) fail("chunkTokens must be a positive integer");
  if (m.dtype !== "uint16") fail(`dtype ${JSON.stringify(m.dtype)} is not supported`);
  const t = m.tokenizer;
  if (
    !t ||
    typeof t.hash !== "string" ||
    !isPositiveInt(t.vocabSize) ||
    !Number.isInteger(t.eosId)
  ) {
    fail("tokenizer identity must have name, vocabSize, eosId and hash");
  }
  if (!m.splits || typeof m.splits !== "object") fail("missing splits");
  for (const [split, s] of Object.entries(m.splits ?? {})) {
    if (!Array.isArray(s?.files)) fail(`split ${split} has no files array`);
    for (const f of s.files) {
      if (typeof f.name !== "string" || f.name.includes("/") || f.name.includes("\\")) {
        fail(`split ${split}: bad file name ${JSON.stringify(f.name)}`);
      }
      if (
        !Number.isInteger(f.blocks) ||
        f.blocks < 0 ||
        f.tokens !== f.blocks * (m.blockSize ?? 0)
      ) {
        fail(
          `split ${split}: file ${f.name} has ${f.tokens} tokens, not ${f.blocks} blocks of ${m.blockSize}`,
        );
      }
    }
  }
  return m as ShardManifest;
}

function isPositiveInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x > 0;
}

export class TokenizerMismatchError extends Error {
  override name = "TokenizerMismatchError";
}

/**
 * Throws a TokenizerMismatchError unless the manifest's tokenizer is `expected` (same
 * vocabulary hash, size and EOS id). Training on ids from another vocabulary would silently
 * learn garbage, so this is the check the trainer runs before reading a block.
 */
export function assertTokenizerMatches(
  manifest: Pick<ShardManifest, "tokenizer" | "source">,
  expected: TokenizerIdentity,
  where = manifest.source,
): void {
  const got = manifest.tokenizer;
  const diffs: string[] = [];
  if (got.hash !== expected.hash) diffs.push(`vocabulary hash ${got.hash} != ${expected.hash}`);
  if (got.vocabSize !== expected.vocabSize)
    diffs.push(`vocabSize ${got.vocabSize} != ${expected.vocabSize}`);
  if (got.eosId !== expected.eosId) diffs.push(`eosId ${got.eosId} != ${expected.eosId}`);
  if (diffs.length > 0) {
    throw new TokenizerMismatchError(
      `${where}: shards were made with tokenizer "${got.name}" but the trainer uses "${expected.name}" (${diffs.join(", ")}). ` +
        "Re-run `pnpm data:prepare` with the trainer's tokenizer, or point the trainer at shards made with it.",
    );
  }
}
