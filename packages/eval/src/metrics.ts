/**
 * Multiple-choice metrics as lm-evaluation-harness computes them (`ConfigurableTask.process_results`
 * and `api/metrics.py`):
 * - acc: argmax of the summed log-likelihoods equals gold;
 * - acc_norm: argmax of loglik / len(choice), len in characters (Python code points) of the
 *   choice text without the target delimiter;
 * - a gold index outside the choices scores 0 (the harness logs a warning and uses -100);
 * - aggregation `mean`, stderr `mean_stderr` = sample standard deviation / sqrt(n), reported
 *   as "N/A" for a single item.
 */
import { pyLen } from "./pytext.js";

/** numpy.argmax: first index of the maximum; a NaN counts as the maximum. */
export function argmax(values: readonly number[]): number {
  if (values.length === 0) throw new Error("argmax of an empty sequence");
  let best = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) return i;
    if (v > values[best]!) best = i;
  }
  return best;
}

export type MultipleChoiceMetric = "acc" | "acc_norm";

export interface DocScore {
  acc: number;
  acc_norm: number;
  pred: number;
  predNorm: number;
  goldInRange: boolean;
}

/** Scores one document from its per-choice log-likelihoods. `choices` are the harness's doc_to_choice strings. */
export function scoreMultipleChoice(
  logprobs: readonly number[],
  choices: readonly string[],
  gold: number,
): DocScore {
  if (logprobs.length !== choices.length) {
    throw new Error(`${logprobs.length} log-likelihoods for ${choices.length} choices`);
  }
  const pred = argmax(logprobs);
  // numpy float division: x / 0 is +-inf (or nan for 0 / 0), as in the harness.
  const predNorm = argmax(logprobs.map((ll, i) => ll / pyLen(choices[i]!)));
  const goldInRange = Number.isInteger(gold) && gold >= 0 && gold < choices.length;
  return {
    acc: goldInRange && pred === gold ? 1 : 0,
    acc_norm: goldInRange && predNorm === gold ? 1 : 0,
    pred,
    predNorm,
    goldInRange,
  };
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new Error("mean of an empty sequence");
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

/** The harness's `mean_stderr`: sqrt(sum((x - mean)^2) / (n - 1)) / sqrt(n); "N/A" when n < 2. */
export function meanStderr(values: readonly number[]): number | "N/A" {
  const n = values.length;
  if (n < 2) return "N/A";
  const mu = mean(values);
  let ss = 0;
  for (const v of values) ss += (v - mu) ** 2;
  return Math.sqrt(ss / (n - 1)) / Math.sqrt(n);
}
