/**
 * The tokenizer as the pipeline sees it: batches of texts in, token ids out, plus the identity
 * recorded in manifests. "llama2" is @tinyllama/tokenizer's bundled Llama 2 model; "bytes"
 * (UTF-8 bytes + 3, EOS 2) exists for tests and for measuring the pipeline without tokenizer
 * cost, and is refused by any trainer expecting Llama 2 ids.
 */
import { createHash } from "node:crypto";
import type { TokenizerIdentity } from "../shards/manifest.js";

export interface PipelineTokenizer {
  identity: TokenizerIdentity;
  eosId: number;
  /** Token ids per text (arrays or typed arrays), no BOS, no EOS. */
  encodeBatch(texts: string[]): Promise<ArrayLike<number>[]>;
}

export function bytesTokenizer(): PipelineTokenizer {
  const enc = new TextEncoder();
  return {
    identity: {
      name: "utf8-bytes+3",
      vocabSize: 259,
      eosId: 2,
      hash: createHash("sha256").update("utf8-bytes+3").digest("hex").slice(0, 16),
    },
    eosId: 2,
    async encodeBatch(texts) {
      return texts.map((t) => Array.from(enc.encode(t), (b) => b + 3));
    },
  };
}

/** The parts of @tinyllama/tokenizer's LlamaTokenizer the pipeline uses. */
export interface LlamaTokenizerLike {
  eosId: number;
  vocabSize: number;
  model: {
    pieces: string[];
    types: Uint8Array;
    mergeRank?: Int32Array;
    unkId: number;
    bosId: number;
    eosId: number;
  };
  encodeBatchToInt32Arrays(
    texts: readonly string[],
    opts: { bos: boolean; eos: boolean; threads?: number },
  ): Promise<Int32Array[]>;
  /** If the tokenizer package provides an identity, it wins over the one computed here. */
  identity?: TokenizerIdentity;
}

/**
 * The identity recorded in manifests and checked by the trainer: sha256 over the piece strings,
 * piece types, merge ranks and special ids. Two tokenizers with the same identity produce the
 * same ids. The trainer computes it with this same function from its own tokenizer.
 */
export function tokenizerIdentity(
  tok: Pick<LlamaTokenizerLike, "model" | "vocabSize" | "eosId" | "identity">,
): TokenizerIdentity {
  if (tok.identity && typeof tok.identity.hash === "string") return tok.identity;
  const m = tok.model;
  const h = createHash("sha256");
  h.update(`pieces:${m.pieces.length}\0`);
  for (const p of m.pieces) h.update(`${p}\0`);
  h.update(m.types);
  if (m.mergeRank)
    h.update(new Uint8Array(m.mergeRank.buffer, m.mergeRank.byteOffset, m.mergeRank.byteLength));
  h.update(`unk:${m.unkId} bos:${m.bosId} eos:${m.eosId}`);
  return {
    name: "llama2-sentencepiece",
    vocabSize: tok.vocabSize,
    eosId: tok.eosId,
    hash: h.digest("hex"),
  };
}

/** Wraps a loaded LlamaTokenizer. Encodes on the calling thread: executors parallelise tasks. */
export function wrapLlamaTokenizer(tok: LlamaTokenizerLike, threads = 0): PipelineTokenizer {
  const identity = tokenizerIdentity(tok);
  return {
    identity,
    eosId: tok.eosId,
    async encodeBatch(texts) {
      return (await tok.encodeBatchToInt32Arrays(texts, {
        bos: false,
        eos: false,
        threads,
      })) as unknown as number[][];
    },
  };
}

const loaded = new Map<string, Promise<PipelineTokenizer>>();

/**
 * Loads the named tokenizer once per process ("llama2" is @tinyllama/tokenizer's bundled
 * Llama 2 model, offline); a worker running many tasks pays the load once.
 */
export function loadPipelineTokenizer(kind: "llama2" | "bytes"): Promise<PipelineTokenizer> {
  let p = loaded.get(kind);
  if (!p) {
    p = loadUncached(kind);
    p.catch(() => loaded.delete(kind));
    loaded.set(kind, p);
  }
  return p;
}

async function loadUncached(kind: "llama2" | "bytes"): Promise<PipelineTokenizer> {
  if (kind === "bytes") return bytesTokenizer();
  let mod: Record<string, unknown>;
  try {
    mod = (await import("@tinyllama/tokenizer")) as Record<string, unknown>;
  } catch (err) {
    throw new Error(
      `cannot load @tinyllama/tokenizer (is it built? run \`pnpm build\`): ${(err as Error).message}`,
    );
  }
  const cls = mod.LlamaTokenizer as { load(): Promise<LlamaTokenizerLike> } | undefined;
  if (!cls || typeof cls.load !== "function") {
    throw new Error(
      '@tinyllama/tokenizer does not export LlamaTokenizer.load(); use "tokenizer": "bytes" to run the pipeline without it',
    );
  }
  return wrapLlamaTokenizer(await cls.load());
}
