/**
 * Writes small LITPKDS shard directories (manifest + files, via @tinyllama/data's writer) for
 * tests: a learnable token stream (a fixed random bigram chain over a few hundred real-vocabulary
 * ids, documents ending in EOS), so a small model's loss visibly falls within tens of steps.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  loadOrMakePlan,
  loadPipelineTokenizer,
  MANIFEST_FORMAT,
  runLocal,
  type ShardManifest,
  ShardWriter,
  type SplitManifest,
  sampleConfig,
  type TokenizerIdentity,
  writeManifest,
} from "@tinyllama/data";

/** The Llama 2 identity the trainer expects (what `pnpm data:prepare` records). */
export async function llama2Identity(): Promise<TokenizerIdentity> {
  return (await loadPipelineTokenizer("llama2")).identity;
}

export interface SourceSpec {
  name: string;
  trainBlocks: number;
  validationBlocks?: number;
  /** Offsets the chain's vocabulary so sources differ. */
  salt?: number;
  tokenizer: TokenizerIdentity;
  /** Blocks per file (small, so block order crosses files). */
  blocksPerFile?: number;
}

function* chain(salt: number, seed: number): Generator<number> {
  const states = 300;
  let x = seed >>> 0;
  const rnd = () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 4294967296;
  };
  // Each state has 3 likely successors: about 1.1 nats of entropy per token.
  const next = Array.from({ length: states }, (_, s) => [
    (s * 7 + 1 + salt) % states,
    (s * 13 + 5 + salt) % states,
    (s * 31 + 11 + salt) % states,
  ]);
  let s = 0;
  let docLen = 0;
  for (;;) {
    if (docLen > 50 && rnd() < 0.02) {
      yield 2;
      docLen = 0;
      continue;
    }
    const r = rnd();
    s = next[s]![r < 0.6 ? 0 : r < 0.9 ? 1 : 2]!;
    yield 1000 + s * 17 + salt;
    docLen++;
  }
}

async function writeSplit(
  dir: string,
  prefix: string,
  blocks: number,
  gen: Generator<number>,
  blocksPerFile: number,
): Promise<SplitManifest> {
  const w = new ShardWriter({ dir, prefix, blockSize: 2049, chunkTokens: 2049 * blocksPerFile });
  const tokens = new Uint16Array(blocks * 2049);
  for (let i = 0; i < tokens.length; i++) tokens[i] = gen.next().value as number;
  await w.add(tokens);
  const r = await w.finish();
  return {
    files: r.files,
    documents: 0,
    tokens: r.tokens,
    blocks: r.blocks,
    droppedTailTokens: r.droppedTailTokens,
  };
}

export async function writeTestShards(root: string, sources: SourceSpec[]): Promise<void> {
  for (const s of sources) {
    const dir = join(root, s.name);
    mkdirSync(dir, { recursive: true });
    const salt = s.salt ?? 0;
    const perFile = s.blocksPerFile ?? 8;
    const splits: Record<string, SplitManifest> = {
      train: await writeSplit(dir, `train_${s.name}`, s.trainBlocks, chain(salt, 1), perFile),
    };
    if (s.validationBlocks) {
      splits.validation = await writeSplit(
        dir,
        `validation_${s.name}`,
        s.validationBlocks,
        chain(salt, 99),
        perFile,
      );
    }
    const manifest: ShardManifest = {
      format: MANIFEST_FORMAT,
      source: s.name,
      blockSize: 2049,
      chunkTokens: 2049 * perFile,
      dtype: "uint16",
      tokenizer: s.tokenizer,
      eosAppended: true,
      splits,
      stats: { documentsRead: 0, bytesRead: 0, removed: {}, badRecords: 0, documentsKept: 0 },
      config: { generator: "trainer test chain", salt },
      createdAt: new Date(0).toISOString(),
    };
    await writeManifest(dir, manifest);
  }
}

/**
 * Shards of the bundled sample (SlimPajama, StarCoderData, Proof-Pile-2, SkyPile excerpts),
 * made by @tinyllama/data's pipeline in this process: exactly what `pnpm data:prepare` writes.
 */
export async function prepareBundledSample(output: string): Promise<void> {
  const { plan } = await loadOrMakePlan(sampleConfig(output));
  await runLocal(plan, { inProcess: true });
}
