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
  encodeBatch(texts: string[]): Promise<number[][]>;
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

interface LlamaTokenizerLike {
  encode(text: string, opts: { bos: boolean; eos: boolean }): number[];
  encodeBatch?(
    texts: string[],
    opts: { bos: boolean; eos: boolean },
  ): Promise<number[][]> | number[][];
  eosId: number;
  vocabSize: number;
  identity?: unknown;
  vocabHash?: string;
  hash?: string;
}

/** Loads the named tokenizer; "llama2" comes from @tinyllama/tokenizer (offline, bundled). */
export async function loadPipelineTokenizer(kind: "llama2" | "bytes"): Promise<PipelineTokenizer> {
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
      '@tinyllama/tokenizer does not export LlamaTokenizer.load() yet; use "tokenizer": "bytes" in the config to run the pipeline without it',
    );
  }
  const tok = await cls.load();
  const identity = identityOf(tok);
  const opts = { bos: false, eos: false };
  return {
    identity,
    eosId: tok.eosId,
    async encodeBatch(texts) {
      if (tok.encodeBatch) return await tok.encodeBatch(texts, opts);
      return texts.map((t) => tok.encode(t, opts));
    },
  };
}

function identityOf(tok: LlamaTokenizerLike): TokenizerIdentity {
  const id = tok.identity as Partial<TokenizerIdentity> | string | undefined;
  if (id && typeof id === "object" && typeof id.hash === "string") {
    return {
      name: id.name ?? "llama2",
      vocabSize: id.vocabSize ?? tok.vocabSize,
      eosId: id.eosId ?? tok.eosId,
      hash: id.hash,
    };
  }
  const hash = typeof id === "string" ? id : (tok.vocabHash ?? tok.hash);
  if (typeof hash !== "string")
    throw new Error("@tinyllama/tokenizer: the tokenizer exposes no identity/vocabulary hash");
  return { name: "llama2", vocabSize: tok.vocabSize, eosId: tok.eosId, hash };
}
