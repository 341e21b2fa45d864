/**
 * Pair encoding exactly as lm-evaluation-harness (`TemplateLM._encode_pair` and
 * `TemplateLM.loglikelihood`) does it:
 * - trailing whitespace of the context moves to the front of the continuation;
 * - `context + continuation` is tokenized as a whole and `context` alone; the continuation
 *   tokens are `whole[len(context_tokens):]` (so merges across the boundary count as
 *   continuation, as in the harness);
 * - an empty context becomes one prefix token (BOS from harness 0.4.3 on, EOS before) and the
 *   continuation is tokenized alone without special tokens.
 * BOS: harness <= 0.4.9.1 never added it for causal models (`add_bos_token=False`); 0.4.9.2 and
 * later use the tokenizer default, which for Llama prepends it. Both are options here and the
 * choice is recorded in the results. Releases before 0.4.9.2 run with `add_bos_token=True`
 * encoded an empty context's continuation with special tokens too, so it started with BOS
 * (`legacyEmptyContext`).
 */
import { pyRstrip } from "./pytext.js";
import type { EvalTokenizer, TextRequest, TokenRequest } from "./types.js";

export interface PairEncodingOptions {
  /** Prepend BOS when encoding contexts (harness >= 0.4.9.2 with a Llama tokenizer). */
  addBos: boolean;
  /** Context token of an empty-context request: "bos" (harness >= 0.4.3) or "eos" (<= 0.4.2). */
  emptyContextToken: "bos" | "eos";
  /**
   * Harness <= 0.4.9.1 with `add_bos_token=True`: an empty context's continuation was encoded
   * with the tokenizer's special tokens, so it starts with BOS (and no prefix token is reused).
   * Only read when addBos is set.
   */
  legacyEmptyContext?: boolean;
}

export const DEFAULT_PAIR_ENCODING: PairEncodingOptions = Object.freeze({
  addBos: false,
  emptyContextToken: "bos",
});

function toArray(tokens: ArrayLike<number>): number[] {
  return Array.from(tokens);
}

export function encodePair(
  tokenizer: EvalTokenizer,
  request: TextRequest,
  options: PairEncodingOptions = DEFAULT_PAIR_ENCODING,
): TokenRequest {
  let { context, continuation } = request;
  if (context === "") {
    const legacy = options.addBos && options.legacyEmptyContext === true;
    const continuationTokens = toArray(tokenizer.encode(continuation, { bos: legacy, eos: false }));
    const prefix = options.emptyContextToken === "bos" ? tokenizer.bosId : tokenizer.eosId;
    if (legacy) return { contextTokens: [prefix], continuationTokens };
    if (continuationTokens[0] === prefix) {
      // The harness reuses a leading prefix token instead of doubling it.
      return {
        contextTokens: continuationTokens.slice(0, 1),
        continuationTokens: continuationTokens.slice(1),
      };
    }
    return { contextTokens: [prefix], continuationTokens };
  }
  const stripped = pyRstrip(context);
  if (stripped.length < context.length) {
    continuation = context.slice(stripped.length) + continuation;
    context = stripped;
  }
  const encodeOptions = { bos: options.addBos, eos: false };
  const whole = toArray(tokenizer.encode(context + continuation, encodeOptions));
  const contextTokens = toArray(tokenizer.encode(context, encodeOptions));
  return { contextTokens, continuationTokens: whole.slice(contextTokens.length) };
}
