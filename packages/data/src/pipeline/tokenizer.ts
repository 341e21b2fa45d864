/**
 * The tokenizer as the pipeline sees it: texts in, token ids out (written straight into the
 * token spool's buffer, or per batch for pack without dedup), plus the identity recorded in
 * manifests. "llama2" is @tinyllama/tokenizer's bundled Llama 2 model; "bytes"
 * (UTF-8 bytes + 3, EOS 2) exists for tests and for measuring the pipeline without tokenizer
 * cost, and is refused by any trainer expecting Llama 2 ids.
 */
import { createHash } from "node:crypto";
import { LlamaTokenizer } from "@tinyllama/tokenizer";
import type { TokenizerIdentity } from "../shards/manifest.js";

export interface PipelineTokenizer {
  identity: TokenizerIdentity;
  eosId: number;
  /** Token ids per text (arrays or typed arrays), no BOS, no EOS. */
  encodeBatch(texts: string[]): Promise<ArrayLike<number>[]>;
  /**
   * Writes the ids of `text` followed by `eosId` (no BOS) into `out` from `offset` and returns
   * their count: no array per document. At most `maxEncodedLength(text.length)` (from
   * @tinyllama/tokenizer) ids; when they do not fit it throws a RangeError and writes nothing.
   */
  encodeInto(text: string, out: EncodeTarget, offset: number): number;
}

export type EncodeTarget = Uint16Array | Int32Array | Uint32Array;

/**
 * Refuses a tokenizer whose ids do not fit uint16 before anything is written into a Uint16Array
 * (which would wrap them silently): the token spool and LITPKDS dtype 8 hold uint16.
 */
export function assertUint16Ids(
  tok: Pick<PipelineTokenizer, "identity">,
  where: string,
  holder: string,
): void {
  if (tok.identity.vocabSize > 0x10000)
    throw new RangeError(
      `${where}: ${tok.identity.name} has ${tok.identity.vocabSize} ids; ${holder} holds uint16`,
    );
}

export function bytesTokenizer(): PipelineTokenizer {
  const enc = new TextEncoder();
  // UTF-8 of a UTF-16 unit is at most 3 bytes (a lone surrogate becomes U+FFFD, 3 bytes)
  let scratch = new Uint8Array(1 << 16);
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
    encodeInto(text, out, offset) {
      if (!Number.isInteger(offset) || offset < 0 || offset > out.length)
        throw new RangeError(
          `encodeInto: offset must be an integer in [0, ${out.length}], got ${offset}`,
        );
      if (scratch.length < 3 * text.length) scratch = new Uint8Array(3 * text.length);
      const { written } = enc.encodeInto(text, scratch);
      const count = written + 1;
      if (count > out.length - offset)
        throw new RangeError(
          `encodeInto: ${count} ids do not fit at offset ${offset} of a buffer of length ${out.length} (room for ${out.length - offset}); nothing was written`,
        );
      for (let i = 0; i < written; i++) out[offset + i] = (scratch[i] as number) + 3;
      out[offset + written] = 2;
      return count;
    },
  };
}

/**
 * The identity recorded in manifests and checked by the trainer and eval: sha256 over what gives
 * token ids their meaning, the vocabulary (piece strings in id order, piece types, special ids).
 * Merge priorities are left out on purpose: the same Llama 2 vocabulary loaded from the bundled
 * default (Hugging Face merge list) or from a `tokenizer.model` (scores) encodes identically but
 * stores its merge order differently, and shards made by either are interchangeable for a model.
 */
export function tokenizerIdentity(
  tok: Pick<LlamaTokenizer, "model" | "vocabSize" | "eosId">,
): TokenizerIdentity {
  const m = tok.model;
  const h = createHash("sha256");
  h.update(`pieces:${m.pieces.length}\0`);
  for (const p of m.pieces) h.update(`${p}\0`);
  h.update(m.types);
  h.update(`unk:${m.unkId} bos:${m.bosId} eos:${m.eosId}`);
  return {
    name: "llama2-sentencepiece",
    vocabSize: tok.vocabSize,
    eosId: tok.eosId,
    hash: h.digest("hex"),
  };
}

/** Wraps a loaded LlamaTokenizer. Encodes on the calling thread: executors parallelise tasks. */
export function wrapLlamaTokenizer(tok: LlamaTokenizer, threads = 0): PipelineTokenizer {
  return {
    identity: tokenizerIdentity(tok),
    eosId: tok.eosId,
    encodeBatch: (texts) =>
      tok.encodeBatchToInt32Arrays(texts, { bos: false, eos: false, threads }),
    // eos: true appends exactly tok.eosId after the ids, what the spool stores per document
    encodeInto: (text, out, offset) => tok.encodeInto(text, out, offset, { bos: false, eos: true }),
  };
}

const loaded = new Map<string, Promise<PipelineTokenizer>>();
let bundled: Promise<LlamaTokenizer> | undefined;

/**
 * @tinyllama/tokenizer's bundled Llama 2 model (offline), loaded once per process: the
 * pipeline's "llama2" tokenizer and the trainer (identity check, checkpoint tokenizer files).
 */
export function bundledLlamaTokenizer(): Promise<LlamaTokenizer> {
  if (!bundled) {
    bundled = LlamaTokenizer.load();
    bundled.catch(() => {
      bundled = undefined;
    });
  }
  return bundled;
}

/**
 * Loads the named tokenizer once per process ("llama2": bundledLlamaTokenizer); a worker
 * running many tasks pays the load once.
 */
export function loadPipelineTokenizer(kind: "llama2" | "bytes"): Promise<PipelineTokenizer> {
  let p = loaded.get(kind);
  if (!p) {
    p =
      kind === "bytes"
        ? Promise.resolve(bytesTokenizer())
        : bundledLlamaTokenizer().then((tok) => wrapLlamaTokenizer(tok));
    p.catch(() => loaded.delete(kind));
    loaded.set(kind, p);
  }
  return p;
}
