/**
 * Public entry point of @tinyllama/tokenizer: the exact Llama 2 SentencePiece BPE tokenizer.
 * See this package's README for the API and examples.
 */

export { hfHome, hfHubCache, hfOffline, hfToken } from "./hf-env.js";
export { huggingFaceTokenizerFiles, toHuggingFaceTokenizerJson } from "./hf-export.js";
export { parseHfTokenizerJson } from "./hf-json.js";
export type { TokenizerModel } from "./model.js";
export { PieceType } from "./model.js";
export { parseSentencePieceModel } from "./sentencepiece-model.js";
export {
  type EncodeBatchOptions,
  type EncodeOptions,
  LlamaTokenizer,
  type LoadOptions,
  maxEncodedLength,
} from "./tokenizer.js";
