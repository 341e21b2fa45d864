/**
 * Opens the shard directories a stage's mixture needs (data/<source>/ with manifest.json, as
 * written by `pnpm data:prepare`) and checks, before any step runs, that they can feed this
 * model: every source present with a train split, one tokenizer across sources, its vocabulary
 * the model's, blocks of 2049 tokens. Validation splits are optional and opened when present.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { ShardSet, type TokenizerIdentity } from "@tinyllama/data";

export const BLOCK_SIZE = 2049;

/** A source's shards live in data/<source>/, named as in the mixture presets. */
export function sourceDir(root: string, source: string): string {
  return join(root, source);
}

export interface SourceShards {
  name: string;
  train: ShardSet;
  validation: ShardSet | null;
}

/**
 * `expected`: the tokenizer the model is trained for (the Llama 2 identity from
 * @tinyllama/data's tokenizerIdentity); shards made by any other tokenizer are refused.
 */
export async function openSources(
  dataDir: string,
  sources: string[],
  vocabSize: number,
  expected: TokenizerIdentity | null = null,
): Promise<Map<string, SourceShards>> {
  const root = resolve(dataDir);
  const missing = sources.filter((s) => !existsSync(join(sourceDir(root, s), "manifest.json")));
  if (missing.length > 0) {
    throw new Error(
      `missing shards for source(s) ${missing.join(", ")} under ${root} (expected ${missing
        .map((s) => join(root, s, "manifest.json"))
        .join(", ")}); run \`pnpm data:prepare\` first, or pass --data <dir>`,
    );
  }
  const out = new Map<string, SourceShards>();
  let identity: { source: string; tok: TokenizerIdentity } | null = null;
  try {
    for (const name of sources) {
      const dir = sourceDir(root, name);
      const train = await ShardSet.open(dir, {
        split: "train",
        ...(expected ? { tokenizer: expected } : {}),
      });
      const tok = train.manifest.tokenizer;
      out.set(name, { name, train, validation: null });
      if (identity && identity.tok.hash !== tok.hash) {
        throw new Error(
          `shards of "${name}" were made by tokenizer ${tok.name} (hash ${tok.hash}) but "${identity.source}" by ` +
            `${identity.tok.name} (hash ${identity.tok.hash}): every source must use one tokenizer; re-run \`pnpm data:prepare\``,
        );
      }
      identity ??= { source: name, tok };
      if (tok.vocabSize !== vocabSize) {
        throw new Error(
          `shards of "${name}" use a ${tok.vocabSize}-token vocabulary (${tok.name}) but the model has ${vocabSize}: ` +
            "they were made by another tokenizer; prepare them with the Llama 2 tokenizer",
        );
      }
      if (train.blockSize !== BLOCK_SIZE) {
        throw new Error(
          `shards of "${name}" hold blocks of ${train.blockSize} tokens; training needs ${BLOCK_SIZE} (2048 inputs + 1 shifted target)`,
        );
      }
      if (train.numBlocks === 0) {
        throw new Error(`shards of "${name}" have no training blocks (${dir})`);
      }
      if (train.manifest.splits.validation) {
        const v = await ShardSet.open(dir, { split: "validation" });
        if (v.numBlocks > 0) out.get(name)!.validation = v;
        else v.close();
      }
    }
  } catch (e) {
    closeSources(out);
    throw e;
  }
  return out;
}

export function closeSources(sources: Map<string, SourceShards>): void {
  for (const s of sources.values()) {
    s.train.close();
    s.validation?.close();
  }
}
