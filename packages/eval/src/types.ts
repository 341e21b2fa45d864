/**
 * The seams of the eval package. A task turns documents into string requests; a tokenizer turns
 * them into token requests exactly as lm-evaluation-harness does; a `TokenScorer` (the model)
 * returns per-token log-probabilities for token windows. Everything between is plain data, so
 * the scoring engine is testable with a toy model whose probabilities are known by hand.
 */

/** One log-likelihood request in text: score `continuation` given `context`. */
export interface TextRequest {
  context: string;
  continuation: string;
}

/** The same request after pair encoding. */
export interface TokenRequest {
  contextTokens: number[];
  continuationTokens: number[];
}

/**
 * What the harness returns per request: summed log-probability and whether every token was the
 * argmax (null when not computed: no metric of these tasks uses it, and on a GPU it costs a copy
 * of the scored logit rows to the host).
 */
export interface LogLikelihood {
  logprob: number;
  isGreedy: boolean | null;
}

/** The tokenizer surface the eval needs (satisfied by @tinyllama/tokenizer's LlamaTokenizer). */
export interface EvalTokenizer {
  encode(text: string, options: { bos: boolean; eos: boolean }): ArrayLike<number>;
  readonly bosId: number;
  readonly eosId: number;
}

/** One forward window: `tokens[0..n-2]` are the model input, `tokens[1..n-1]` the targets. */
export interface ScoreWindow {
  tokens: Int32Array;
  /** Index into `tokens` of the first target the caller needs (>= 1); earlier targets may be skipped. */
  scoreFrom: number;
  /**
   * Target ranges `[start, end)` (indices into `tokens`, scoreFrom <= start < end <= length)
   * whose "every target is the argmax" flag (the harness's is_greedy) is wanted; one per request
   * the window answers. Absent: no greedy flags. A range can stop at its first non-argmax
   * target, which is what keeps this cheap when the logits live on a GPU.
   */
  greedyRanges?: readonly (readonly [number, number])[];
}

/** Scores for `tokens[scoreFrom..n-1]` of one window. */
export interface WindowScores {
  /** `logprobs[j]` = log p(tokens[scoreFrom + j] | tokens[0 .. scoreFrom + j - 1]), full-vocabulary log-softmax. */
  logprobs: Float64Array;
  /** One flag per `greedyRanges` entry; null when the window asked for none. */
  greedy: boolean[] | null;
}

/** A causal language model as the eval sees it. Implementations: the trainer's LlamaModel adapter, toy models. */
export interface TokenScorer {
  /** Longest model input in tokens (windows hold at most maxLength + 1 tokens). */
  readonly maxLength: number;
  /** A short description recorded in the results (e.g. checkpoint path, dtype, device). */
  readonly description: string;
  /** Scores a batch of windows; windows may differ in length. */
  scoreWindows(windows: ScoreWindow[]): Promise<WindowScores[]>;
}

/** Per-range "all argmax" from per-target flags (`flags[j]` for target scoreFrom + j). */
export function rangesFromFlags(
  window: ScoreWindow,
  isArgmax: (target: number) => boolean,
): boolean[] | null {
  if (!window.greedyRanges) return null;
  return window.greedyRanges.map(([start, end]) => {
    for (let t = start; t < end; t++) if (!isArgmax(t)) return false;
    return true;
  });
}
