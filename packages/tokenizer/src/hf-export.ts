/**
 * Writes a model as a Hugging Face `tokenizer.json` configured the way reference/tokenizer.md
 * says reproduces SentencePiece: `Prepend("▁")` + `Replace(" ", "▁")` normaliser, no
 * pre-tokenizer, BPE with byte fallback, and no added tokens (an added `<s>` would be matched
 * inside text, which SentencePiece never does). Used to compare with the `tokenizers` package;
 * also handy to hand the bundled vocabulary to Hugging Face tools.
 *
 * `huggingFaceTokenizerFiles` writes what a model directory needs for transformers'
 * `AutoTokenizer`: the same tokenizer.json with the special pieces as added tokens and BOS
 * prepended (as Llama 2's and TinyLlama's published tokenizers do), tokenizer_config.json and
 * special_tokens_map.json. The trainer puts them into every checkpoint.
 */
import { PieceType, type TokenizerModel } from "./model.js";

export function toHuggingFaceTokenizerJson(model: TokenizerModel): string {
  return JSON.stringify(tokenizerJson(model));
}

/** File name -> contents of a Hugging Face tokenizer for a model directory. */
export function huggingFaceTokenizerFiles(
  model: TokenizerModel,
  options: { modelMaxLength: number },
): Record<string, string> {
  const bos = model.pieces[model.bosId];
  const eos = model.pieces[model.eosId];
  const unk = model.pieces[model.unkId];
  if (bos === undefined || eos === undefined || unk === undefined) {
    throw new Error(`${model.source}: no <s>, </s> or <unk> piece to name as special tokens`);
  }
  const json = tokenizerJson(model);
  // Control and unknown pieces are transformers' special tokens; they are not added again.
  json.added_tokens = model.pieces.flatMap((content, id) =>
    model.types[id] === PieceType.control || model.types[id] === PieceType.unknown
      ? [
          {
            id,
            content,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: true,
          },
        ]
      : [],
  );
  const bosOnly = (seq: "A" | "B") => [
    { SpecialToken: { id: bos, type_id: 0 } },
    { Sequence: { id: seq, type_id: 0 } },
  ];
  json.post_processor = {
    type: "TemplateProcessing",
    single: bosOnly("A"),
    pair: [...bosOnly("A"), ...bosOnly("B")],
    special_tokens: { [bos]: { id: bos, ids: [model.bosId], tokens: [bos] } },
  };
  const special = { bos_token: bos, eos_token: eos, unk_token: unk };
  const config = {
    // Not LlamaTokenizer: transformers 5 rebuilds that one's pipeline from the config
    // (Metaspace, which drops SentencePiece's dummy prefix before a leading space: " x" and
    // "  x" encode differently; measured by tools/compare/trainer/check_tokenizer.py). The
    // generic class uses tokenizer.json as written, BOS from its post-processor.
    tokenizer_class: "PreTrainedTokenizerFast",
    ...special,
    pad_token: null,
    add_bos_token: true,
    add_eos_token: false,
    // clean-up would change decoded text (" ." -> ".")
    clean_up_tokenization_spaces: false,
    model_max_length: options.modelMaxLength,
  };
  return {
    "tokenizer.json": JSON.stringify(json),
    "tokenizer_config.json": `${JSON.stringify(config, null, 2)}\n`,
    "special_tokens_map.json": `${JSON.stringify(special, null, 2)}\n`,
  };
}

function tokenizerJson(model: TokenizerModel): Record<string, unknown> {
  if (model.extraChars.length > 0 || !model.escapeWhitespaces || model.removeExtraWhitespaces) {
    throw new Error(`${model.source}: this model has no exact Hugging Face BPE equivalent`);
  }
  const vocab: Record<string, number> = {};
  model.pieces.forEach((p, i) => {
    vocab[p] = i;
  });
  // Hugging Face merges by list position; equal ranks (SentencePiece ties) keep their order,
  // which Hugging Face then breaks by rank instead of position. Exact for Llama's vocabulary.
  const order = Array.from(model.mergeRank.keys()).sort(
    (a, b) => model.mergeRank[a]! - model.mergeRank[b]! || a - b,
  );
  const merges = order.map((i) => [
    model.pieces[model.mergeLeft[i]!]!,
    model.pieces[model.mergeRight[i]!]!,
  ]);
  const normalizers: unknown[] = [];
  if (model.addDummyPrefix) normalizers.push({ type: "Prepend", prepend: "\u2581" });
  normalizers.push({ type: "Replace", pattern: { String: " " }, content: "\u2581" });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: { type: "Sequence", normalizers },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: model.pieces[model.unkId] ?? null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: model.byteFallback,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}
