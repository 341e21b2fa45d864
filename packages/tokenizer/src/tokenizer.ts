/**
 * LlamaTokenizer: the public face of the package. Loads a model (bundled default, a
 * SentencePiece `tokenizer.model`, a Hugging Face `tokenizer.json`, or `hf://<repo>`),
 * encodes on the calling thread or across worker threads, and decodes.
 */
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { loadBundledModel } from "./bundled.js";
import { compileModel } from "./compile.js";
import { decodeIds } from "./decode.js";
import { BpeEngine, type IdBuffer } from "./engine.js";
import { parseHfTokenizerJson } from "./hf-json.js";
import { downloadFromHub } from "./hub.js";
import { PieceType, type TokenizerModel } from "./model.js";
import { parseSentencePieceModel } from "./sentencepiece-model.js";
import { WorkerPool } from "./worker-pool.js";

/**
 * The most ids `encode` can return for a text of `textLength` UTF-16 code units, with BOS
 * and EOS: each code unit yields at most 3 UTF-8 bytes (a surrogate pair 4 bytes for 2
 * units), each byte at most one id, plus the dummy-prefix `▁` (3 bytes if a model lacks that
 * piece). `encodeInto` never overflows a buffer with this much room.
 */
export function maxEncodedLength(textLength: number): number {
  if (!Number.isInteger(textLength) || textLength < 0) {
    throw new RangeError(`maxEncodedLength: expected a length >= 0, got ${textLength}`);
  }
  return 3 * textLength + 5;
}

export interface EncodeOptions {
  /** Prepend the BOS id (default true). */
  bos?: boolean;
  /** Append the EOS id (default false). */
  eos?: boolean;
}

export interface EncodeBatchOptions extends EncodeOptions {
  /**
   * Worker threads to use. Default: the `threads` given to `load`, else all cores
   * (`os.availableParallelism()`). 0 encodes on the calling thread.
   */
  threads?: number;
}

export interface LoadOptions {
  /** Default worker count for `encodeBatch`. */
  threads?: number;
  /** Cache directory for `hf://` downloads (default: the Hugging Face cache). */
  cacheDir?: string;
  /** Revision for `hf://` downloads (default "main"). */
  revision?: string;
}

export class LlamaTokenizer {
  readonly model: TokenizerModel;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  private readonly engine: BpeEngine;
  private readonly defaultThreads: number;
  private readonly pools = new Map<number, WorkerPool>();
  private pieceIds: Map<string, number> | undefined;

  private constructor(model: TokenizerModel, threads: number | undefined) {
    this.model = model;
    this.vocabSize = model.pieces.length;
    this.bosId = model.bosId;
    this.eosId = model.eosId;
    this.unkId = model.unkId;
    // Tables live in SharedArrayBuffers so worker threads read the same memory.
    this.engine = new BpeEngine(compileModel(model, true));
    this.defaultThreads = checkThreads(threads ?? availableParallelism(), "LlamaTokenizer");
  }

  /**
   * Loads a tokenizer. `source`: omitted for the bundled Llama 2 vocabulary (offline), a path
   * to a SentencePiece `tokenizer.model` or a Hugging Face `tokenizer.json` (or to a directory
   * holding one, `tokenizer.model` first), or `hf://<repo>`
   * (downloaded with @huggingface/hub, honouring HF_TOKEN and HF_ENDPOINT, and cached).
   */
  static async load(source?: string, options: LoadOptions = {}): Promise<LlamaTokenizer> {
    if (options.threads !== undefined) checkThreads(options.threads, "LlamaTokenizer.load");
    return new LlamaTokenizer(await loadModel(source, options), options.threads);
  }

  /** Builds a tokenizer from an already parsed model. */
  static fromModel(model: TokenizerModel, options: { threads?: number } = {}): LlamaTokenizer {
    return new LlamaTokenizer(model, options.threads);
  }

  /** Token ids of `text`: BOS (unless `bos: false`), the pieces, EOS if `eos: true`. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return Array.from(this.encodeToInt32Array(text, options));
  }

  /** Like {@link encode} but returns a fresh Int32Array (cheaper for large texts). */
  encodeToInt32Array(text: string, options: EncodeOptions = {}): Int32Array {
    const out = this.encodeToScratch(text, options, "encode");
    const ids = out.ids.slice(0, out.length);
    this.releaseScratch();
    return ids;
  }

  /**
   * Writes the ids of `text` (same as {@link encode}) into `out` from index `offset` and
   * returns how many were written: no array per document, for packing token streams. When
   * they do not fit (`offset + count > out.length`) it throws a RangeError naming the count
   * and writes nothing. `maxEncodedLength(text.length)` bounds the count, so a buffer with
   * that much room never overflows. A Uint16Array needs a vocabulary of at most 65536 ids.
   */
  encodeInto(
    text: string,
    out: Int32Array | Uint32Array | Uint16Array,
    offset = 0,
    options: EncodeOptions = {},
  ): number {
    if (!(out instanceof Int32Array || out instanceof Uint32Array || out instanceof Uint16Array)) {
      throw new TypeError("encodeInto: out must be an Int32Array, Uint32Array or Uint16Array");
    }
    if (out instanceof Uint16Array && this.vocabSize > 0x10000) {
      throw new RangeError(
        `encodeInto: a Uint16Array cannot hold ids of a ${this.vocabSize}-piece vocabulary`,
      );
    }
    if (!Number.isInteger(offset) || offset < 0 || offset > out.length) {
      throw new RangeError(
        `encodeInto: offset must be an integer in [0, ${out.length}], got ${offset}`,
      );
    }
    const ids = this.encodeToScratch(text, options, "encodeInto");
    const count = ids.length;
    if (count > out.length - offset) {
      this.releaseScratch();
      throw new RangeError(
        `encodeInto: ${count} ids do not fit at offset ${offset} of a buffer of length ${out.length} (room for ${out.length - offset}); nothing was written`,
      );
    }
    out.set(ids.ids.subarray(0, count), offset);
    this.releaseScratch();
    return count;
  }

  /** Encodes into the engine's scratch buffer (valid until the next encode). */
  private encodeToScratch(text: string, options: EncodeOptions, caller: string): IdBuffer {
    if (typeof text !== "string") {
      throw new TypeError(
        `${caller}: expected a string, got ${text === null ? "null" : typeof text}`,
      );
    }
    const out = this.engine.out;
    out.length = 0;
    if ((options.bos ?? true) && this.bosId >= 0) out.push(this.bosId);
    this.engine.encodeInto(text);
    if ((options.eos ?? false) && this.eosId >= 0) out.push(this.eosId);
    return out;
  }

  /** Don't keep a huge scratch buffer alive after one giant document. */
  private releaseScratch(): void {
    if (this.engine.out.ids.length > 1 << 22) this.engine.out.ids = new Int32Array(1024);
  }

  /**
   * Encodes many texts on worker threads; results are in input order and identical to
   * `texts.map((t) => encode(t, options))`.
   */
  async encodeBatch(
    texts: readonly string[],
    options: EncodeBatchOptions = {},
  ): Promise<number[][]> {
    const typedResults = await this.encodeBatchToInt32Arrays(texts, options);
    return typedResults.map((ids) => Array.from(ids));
  }

  /** Like {@link encodeBatch} but returns Int32Arrays. */
  async encodeBatchToInt32Arrays(
    texts: readonly string[],
    options: EncodeBatchOptions = {},
  ): Promise<Int32Array[]> {
    if (!Array.isArray(texts)) throw new TypeError("encodeBatch: expected an array of strings");
    texts.forEach((t, i) => {
      if (typeof t !== "string")
        throw new TypeError(`encodeBatch: texts[${i}] is ${typeof t}, not a string`);
    });
    const threads = checkThreads(options.threads ?? this.defaultThreads, "encodeBatch");
    const encodeOpts = { bos: options.bos ?? true, eos: options.eos ?? false };
    if (threads === 0 || texts.length === 0)
      return texts.map((t) => this.encodeToInt32Array(t, encodeOpts));
    // One pool per thread count, created synchronously so concurrent calls share it.
    let pool = this.pools.get(threads);
    if (pool === undefined) {
      pool = new WorkerPool(this.engine.tables, threads);
      this.pools.set(threads, pool);
    }
    return pool.encode(texts, this.bosId, this.eosId, encodeOpts);
  }

  /** Text of `ids` (SentencePiece DecodeIds semantics; throws RangeError on a bad id). */
  decode(ids: ArrayLike<number>): string {
    return decodeIds(this.model, ids);
  }

  /** The piece string of an id (`▁` marks a space). */
  idToPiece(id: number): string {
    const piece = this.model.pieces[id];
    if (piece === undefined) throw new RangeError(`idToPiece: ${id} is not a token id`);
    return piece;
  }

  /** The id of a piece string, or undefined. */
  pieceToId(piece: string): number | undefined {
    if (this.pieceIds === undefined) {
      this.pieceIds = new Map();
      this.model.pieces.forEach((p, i) => {
        if (!this.pieceIds!.has(p)) this.pieceIds!.set(p, i);
      });
    }
    return this.pieceIds.get(piece);
  }

  /** Whether `id` is a byte-fallback piece `<0xNN>`. */
  isByte(id: number): boolean {
    return this.model.types[id] === PieceType.byte;
  }

  /**
   * Stops the worker threads (idle workers never keep the process alive anyway); batches in
   * flight are rejected. A later encodeBatch starts fresh workers.
   */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }
}

function checkThreads(threads: unknown, caller: string): number {
  if (!Number.isInteger(threads) || (threads as number) < 0) {
    throw new RangeError(
      `${caller}: threads must be a non-negative integer, got ${typeof threads === "string" ? JSON.stringify(threads) : String(threads)}`,
    );
  }
  return threads as number;
}

async function loadModel(
  source: string | undefined,
  options: LoadOptions,
): Promise<TokenizerModel> {
  if (source === undefined) return loadBundledModel();
  if (typeof source !== "string" || source.length === 0) {
    throw new TypeError("LlamaTokenizer.load: source must be a path, hf://<repo>, or omitted");
  }
  if (source.startsWith("hf://")) {
    const file = await downloadFromHub(source.slice("hf://".length), options);
    return parseFile(file.path, file.bytes);
  }
  let path = source;
  // A model directory (a checkpoint, a hub snapshot): take its tokenizer.model, else its
  // tokenizer.json, like hf:// does.
  if ((await stat(source).catch(() => undefined))?.isDirectory()) {
    const found = [join(source, "tokenizer.model"), join(source, "tokenizer.json")].find((p) =>
      existsSync(p),
    );
    if (found === undefined) {
      throw new Error(
        `LlamaTokenizer.load: directory ${source} has no tokenizer.model or tokenizer.json`,
      );
    }
    path = found;
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`LlamaTokenizer.load: cannot read ${path} (${code ?? String(e)})`);
  }
  return parseFile(path, bytes);
}

function parseFile(path: string, bytes: Uint8Array): TokenizerModel {
  if (looksLikeJson(bytes)) return parseHfTokenizerJson(Buffer.from(bytes).toString("utf8"), path);
  return parseSentencePieceModel(bytes, path);
}

/** A tokenizer.json is an object: "{" ... "}" around optional whitespace. A ModelProto starts
 * with the tag byte 0x0a, which is also "\n", hence the check of both ends. */
function looksLikeJson(bytes: Uint8Array): boolean {
  const ws = (b: number | undefined): boolean =>
    b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
  let i = 0;
  while (i < bytes.length && ws(bytes[i])) i++;
  let j = bytes.length - 1;
  while (j > i && ws(bytes[j])) j--;
  return bytes[i] === 0x7b && bytes[j] === 0x7d;
}
