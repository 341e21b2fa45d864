/**
 * Deterministic toy models for tests and for trying the pipeline without a checkpoint. Their
 * probabilities are known by hand, so expected log-likelihoods, acc and acc_norm can be
 * computed on paper.
 */
import {
  type EvalTokenizer,
  rangesFromFlags,
  type ScoreWindow,
  type TokenScorer,
  type WindowScores,
} from "./types.js";

/**
 * A word tokenizer that behaves like SentencePiece where it matters for pair encoding: a space
 * belongs to the word after it (" yes" is one token), so a context ending in a space tokenizes
 * differently alone than inside context + continuation. Ids are assigned on first sight, in
 * order, from 3 upwards (0 unk, 1 BOS, 2 EOS), so they are deterministic for a given call order
 * unless `vocab` fixes them.
 */
export class ToyWordTokenizer implements EvalTokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  private readonly ids = new Map<string, number>();
  private readonly pieces: string[] = ["<unk>", "<s>", "</s>"];

  constructor(vocab: readonly string[] = []) {
    for (const piece of vocab) this.id(piece);
  }

  /** Splits into pieces: runs of spaces attach to the following word; other whitespace stands alone. */
  static split(text: string): string[] {
    return text.match(/ *[^ \n]+| +(?=\n|$)|\n/g) ?? [];
  }

  id(piece: string): number {
    let id = this.ids.get(piece);
    if (id === undefined) {
      id = this.pieces.length;
      this.ids.set(piece, id);
      this.pieces.push(piece);
    }
    return id;
  }

  encode(text: string, options: { bos: boolean; eos: boolean }): number[] {
    const out = ToyWordTokenizer.split(text).map((p) => this.id(p));
    if (options.bos) out.unshift(this.bosId);
    if (options.eos) out.push(this.eosId);
    return out;
  }

  piece(id: number): string {
    const p = this.pieces[id];
    if (p === undefined) throw new Error(`unknown toy token id ${id}`);
    return p;
  }
}

/** A next-token distribution given the tokens before it (log-probabilities over the vocabulary). */
export type ToyDistribution = (prefix: Int32Array) => Float64Array;

/**
 * A causal "model" from a distribution function. Counts forwards and tokens so tests can check
 * batching and prefix reuse.
 */
export class ToyScorer implements TokenScorer {
  readonly description: string;
  forwardWindows = 0;
  forwardTokens = 0;
  calls = 0;
  readonly batchSizes: number[] = [];

  constructor(
    readonly maxLength: number,
    private readonly distribution: ToyDistribution,
    description = "toy",
  ) {
    this.description = description;
  }

  async scoreWindows(windows: ScoreWindow[]): Promise<WindowScores[]> {
    this.calls++;
    this.batchSizes.push(windows.length);
    return windows.map((window) => {
      const { tokens, scoreFrom } = window;
      if (tokens.length - 1 > this.maxLength) {
        throw new Error(
          `window of ${tokens.length - 1} inputs exceeds maxLength ${this.maxLength}`,
        );
      }
      this.forwardWindows++;
      this.forwardTokens += tokens.length - 1;
      const n = tokens.length - scoreFrom;
      const logprobs = new Float64Array(n);
      const argmaxAt = new Uint8Array(tokens.length);
      for (let j = 0; j < n; j++) {
        const t = scoreFrom + j;
        const dist = this.distribution(tokens.subarray(0, t));
        const target = tokens[t]!;
        const lp = dist[target];
        if (lp === undefined) throw new Error(`token ${target} outside the toy vocabulary`);
        logprobs[j] = lp;
        let best = 0;
        for (let v = 1; v < dist.length; v++) if (dist[v]! > dist[best]!) best = v;
        argmaxAt[t] = best === target ? 1 : 0;
      }
      return { logprobs, greedy: rangesFromFlags(window, (t) => argmaxAt[t] === 1) };
    });
  }
}

/** log-softmax of unnormalised weights (a probability table from hand-picked weights). */
export function logNormalize(weights: readonly number[]): Float64Array {
  const total = weights.reduce((a, b) => a + b, 0);
  return Float64Array.from(weights, (w) => Math.log(w / total));
}

/** A unigram model: every position has the same distribution. */
export function unigramScorer(weights: readonly number[], maxLength = 2048): ToyScorer {
  const dist = logNormalize(weights);
  return new ToyScorer(maxLength, () => dist, `toy unigram over ${weights.length} tokens`);
}

/**
 * A bigram-with-position model for prefix-sensitivity tests: the distribution depends on the
 * previous token and on the position in the window (so left truncation visibly changes scores).
 */
export function positionalBigramScorer(vocabSize: number, maxLength: number): ToyScorer {
  return new ToyScorer(
    maxLength,
    (prefix) => {
      const prev = prefix[prefix.length - 1] ?? 0;
      const weights = Array.from(
        { length: vocabSize },
        (_, v) => 1 + ((v * 7 + prev * 3 + prefix.length * 5) % 11),
      );
      return logNormalize(weights);
    },
    `toy positional bigram over ${vocabSize} tokens`,
  );
}
