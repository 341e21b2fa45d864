/**
 * Writes a model as a Hugging Face `tokenizer.json` configured the way reference/tokenizer.md
 * says reproduces SentencePiece: `Prepend("▁")` + `Replace(" ", "▁")` normaliser, no
 * pre-tokenizer, BPE with byte fallback, and no added tokens (an added `<s>` would be matched
 * inside text, which SentencePiece never does). Used to compare with the `tokenizers` package;
 * also handy to hand the bundled vocabulary to Hugging Face tools.
 */
import type { TokenizerModel } from "./model.js";

export function toHuggingFaceTokenizerJson(model: TokenizerModel): string {
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
  return JSON.stringify({
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
  });
}
