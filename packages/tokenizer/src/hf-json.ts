/**
 * Reads a Hugging Face `tokenizer.json` that describes a SentencePiece-style BPE (Llama 2,
 * TinyLlama, Mistral v0.1 ...): model type BPE with byte fallback, and either the
 * `Prepend("▁")` + `Replace(" ", "▁")` normaliser or the `Metaspace` pre-tokenizer without
 * splitting. Anything whose output we would not reproduce exactly (another model type,
 * byte-level pre-tokenizers, NFKC and other normalisers, dropout) is refused with an error
 * that says what was found. Added tokens are kept as ids but, as in SentencePiece, never
 * matched inside text.
 */
import { mergesFromPairList, PieceType, type TokenizerModel } from "./model.js";

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

export function parseHfTokenizerJson(text: string, source: string): TokenizerModel {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `${source}: not valid JSON (${(e as Error).message}); truncated tokenizer.json?`,
    );
  }
  const unsupported = (why: string): never => {
    throw new Error(`${source}: unsupported tokenizer.json: ${why}`);
  };
  if (!isObject(root) || !isObject(root.model)) unsupported('no "model" object');
  const top = root as Json;
  const model = top.model as Json;
  if (model.type !== "BPE") {
    unsupported(
      `model type ${JSON.stringify(model.type)}; only BPE (SentencePiece-style, as Llama 2) is implemented`,
    );
  }
  if (model.dropout !== null && model.dropout !== undefined && model.dropout !== 0) {
    unsupported(`BPE dropout ${String(model.dropout)} (not deterministic)`);
  }
  if (model.ignore_merges === true) {
    unsupported("ignore_merges (whole-word vocabulary lookups are not SentencePiece BPE)");
  }
  if (model.continuing_subword_prefix || model.end_of_word_suffix) {
    unsupported("continuing_subword_prefix / end_of_word_suffix");
  }
  const ws = whitespaceHandling(top, unsupported);

  if (!isObject(model.vocab)) unsupported("model.vocab is not an object");
  const vocab = model.vocab as Record<string, unknown>;
  const entries = Object.entries(vocab);
  const pieces = new Array<string>(entries.length);
  for (const [piece, id] of entries) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= entries.length) {
      unsupported(
        `vocab id ${String(id)} of ${JSON.stringify(piece)} is not in 0..${entries.length - 1}`,
      );
    }
    if (pieces[id as number] !== undefined) unsupported(`vocab id ${String(id)} is used twice`);
    pieces[id as number] = piece;
  }

  const types = new Uint8Array(pieces.length).fill(PieceType.normal);
  const unkToken = typeof model.unk_token === "string" ? model.unk_token : undefined;
  const unkId = unkToken === undefined ? -1 : ((vocab[unkToken] as number | undefined) ?? -1);
  const added = Array.isArray(top.added_tokens) ? top.added_tokens : [];
  for (const t of added) {
    if (isObject(t) && t.special === true && typeof t.id === "number" && t.id < pieces.length) {
      types[t.id] = PieceType.control;
    }
  }
  if (unkId >= 0) types[unkId] = PieceType.unknown;
  pieces.forEach((p, i) => {
    if (/^<0x[0-9A-F]{2}>$/.test(p)) types[i] = PieceType.byte;
  });

  if (!Array.isArray(model.merges)) unsupported("model.merges is not an array");
  const pairs = (model.merges as unknown[]).map((m, i): [string, string] => {
    if (typeof m === "string") {
      const at = m.indexOf(" ");
      if (at <= 0 || at !== m.lastIndexOf(" "))
        unsupported(`merge #${i} ${JSON.stringify(m)} is not "left right"`);
      return [m.slice(0, at), m.slice(at + 1)];
    }
    if (
      Array.isArray(m) &&
      m.length === 2 &&
      typeof m[0] === "string" &&
      typeof m[1] === "string"
    ) {
      return [m[0], m[1]];
    }
    return unsupported(`merge #${i} is neither "left right" nor [left, right]`);
  });
  const idOr = (name: string): number => {
    const id = vocab[name];
    return typeof id === "number" ? id : -1;
  };
  return {
    pieces,
    types,
    ...mergesFromPairList(pieces, pairs, source),
    extraChars: [],
    unkId,
    bosId: idOr("<s>"),
    eosId: idOr("</s>"),
    byteFallback: model.byte_fallback === true,
    addDummyPrefix: ws.addDummyPrefix,
    escapeWhitespaces: ws.escapeSpaces,
    removeExtraWhitespaces: false,
    source,
  };
}

function whitespaceHandling(
  top: Json,
  unsupported: (why: string) => never,
): { addDummyPrefix: boolean; escapeSpaces: boolean } {
  let addDummyPrefix = false;
  let escapeSpaces = false;
  const normalizers: unknown[] = [];
  const norm = top.normalizer;
  if (isObject(norm)) {
    if (norm.type === "Sequence" && Array.isArray(norm.normalizers))
      normalizers.push(...norm.normalizers);
    else normalizers.push(norm);
  } else if (norm !== null && norm !== undefined) unsupported("normalizer is not an object");
  for (const n of normalizers) {
    if (!isObject(n)) unsupported("normalizer entry is not an object");
    const step = n as Json;
    if (step.type === "Prepend" && step.prepend === "\u2581") addDummyPrefix = true;
    else if (
      step.type === "Replace" &&
      isObject(step.pattern) &&
      step.pattern.String === " " &&
      step.content === "\u2581"
    ) {
      escapeSpaces = true;
    } else
      unsupported(
        `normalizer ${JSON.stringify(step.type)} (${JSON.stringify(step).slice(0, 120)})`,
      );
  }
  const pre = top.pre_tokenizer;
  if (isObject(pre)) {
    if (pre.type !== "Metaspace") unsupported(`pre_tokenizer ${JSON.stringify(pre.type)}`);
    if (pre.replacement !== "\u2581") unsupported("Metaspace replacement other than U+2581");
    if (pre.split === true)
      unsupported("Metaspace with split: true (SentencePiece does not split)");
    escapeSpaces = true;
    const scheme = pre.prepend_scheme ?? (pre.add_prefix_space === false ? "never" : "always");
    if (scheme === "always" || scheme === "first") addDummyPrefix = true;
  } else if (pre !== null && pre !== undefined) unsupported("pre_tokenizer is not an object");
  if (!escapeSpaces)
    unsupported(
      'no space escaping (Replace " " -> "▁" or Metaspace); not a SentencePiece-style BPE',
    );
  return { addDummyPrefix, escapeSpaces };
}
