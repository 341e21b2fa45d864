/**
 * Adapts the trainer's `LlamaModel` (forward-only `scoreSequences`) to the eval's `TokenScorer`,
 * and loads a checkpoint with its tokenizer. The model is typed structurally here so the
 * adapter is testable without native kernels.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { LlamaTokenizer } from "@tinyllama/tokenizer";
import type { LlamaModel } from "@tinyllama/trainer";
import { rangesFromFlags, type ScoreWindow, type TokenScorer, type WindowScores } from "./types.js";

/** The part of @tinyllama/trainer's LlamaModel the eval uses. */
export interface SequenceScoringModel {
  readonly config: { maxSeqLen: number; vocabSize: number };
  readonly backend?: { name: string };
  scoreSequences(
    sequences: ArrayLike<number>[],
    opts?: { batchSize?: number },
  ): { logProbs: ArrayLike<number>; greedy: ArrayLike<number> }[];
  dispose?(): void;
}

/** The trainer's model with the forward pieces the fast path drives (plan, loadIds, forward). */
type PlannedModel = Pick<LlamaModel, "config" | "plan" | "loadIds" | "forward" | "greedyTokens">;

function isPlanned(m: SequenceScoringModel | PlannedModel): m is PlannedModel {
  return "plan" in m && "forward" in m && "loadIds" in m && "greedyTokens" in m;
}

/**
 * Windows come longest first, so a batch's windows have similar lengths, and padding them to
 * the batch's longest rounded up to this wastes little. On the five zero-shot tasks (200 docs
 * each, batches of 32) that is 1.07x the real tokens at 8, against 1.55x at 64 (the earlier
 * rounding) and 1.02x for the longest itself (transformers' padding). On an H200 (2026-11-28,
 * tools/bench/eval/RESULTS.md), 8 against 64 took f32 scoring from 262-265 to 362-366
 * requests/s and bf16 from 1,749 to 2,102-2,204, with identical f32 scores (|diff| <= 5.4e-4).
 * Each new padded length is a new activation plan; the model keeps the two most recent.
 */
export const DEFAULT_PAD_MULTIPLE = 8;

/**
 * Scores windows with the trainer's LlamaModel. Fast path: one forward with the cross-entropy
 * op, so only N per-token losses (log p = -loss) come back to the host, plus, when a window
 * asks for is_greedy, each row's argmax (computed on the device); the B x T x 32000 logits
 * never leave it (`scoreSequences` copies them all and log-softmaxes every position in JS).
 * Models without those methods go through `scoreSequences`.
 */
export class LlamaTokenScorer implements TokenScorer {
  readonly maxLength: number;
  readonly description: string;

  constructor(
    private readonly model: SequenceScoringModel | PlannedModel,
    options: {
      maxLength?: number;
      description?: string;
      fastPath?: boolean;
      /** A batch's padded length is a multiple of this (default DEFAULT_PAD_MULTIPLE). */
      padMultiple?: number;
    } = {},
  ) {
    const max = options.maxLength ?? model.config.maxSeqLen;
    if (max > model.config.maxSeqLen) {
      throw new RangeError(
        `maxLength ${max} exceeds the model's context of ${model.config.maxSeqLen} tokens`,
      );
    }
    this.maxLength = max;
    const pad = options.padMultiple ?? DEFAULT_PAD_MULTIPLE;
    if (!Number.isInteger(pad) || pad < 1) {
      throw new RangeError(`padMultiple must be a positive integer, got ${pad}`);
    }
    this.padMultiple = pad;
    this.fastPath = (options.fastPath ?? true) && isPlanned(model);
    this.description = options.description ?? "LlamaModel";
  }

  private readonly fastPath: boolean;
  private readonly padMultiple: number;

  async scoreWindows(windows: ScoreWindow[]): Promise<WindowScores[]> {
    if (windows.length === 0) return [];
    if (this.fastPath) return this.scoreWithLoss(this.model as PlannedModel, windows);
    const model = this.model as SequenceScoringModel;
    const scores = model.scoreSequences(
      windows.map((w) => w.tokens),
      { batchSize: windows.length },
    );
    if (scores.length !== windows.length) {
      throw new Error(`LlamaModel returned ${scores.length} results for ${windows.length} windows`);
    }
    // scoreSequences: logProbs[t] = log p(ids[t+1] | ids[..t]); a window's target i is t = i - 1.
    return scores.map((s, i) => {
      const window = windows[i]!;
      const from = window.scoreFrom - 1;
      return {
        logprobs: Float64Array.from(
          { length: s.logProbs.length - from },
          (_, j) => s.logProbs[from + j]!,
        ),
        greedy: rangesFromFlags(window, (t) => s.greedy[t - 1] === 1),
      };
    });
  }

  private scoreWithLoss(model: PlannedModel, windows: ScoreWindow[]): WindowScores[] {
    const V = model.config.vocabSize;
    const B = windows.length;
    let T = 0;
    for (const w of windows) {
      if (w.tokens.length < 2) throw new Error("a window needs at least 2 tokens");
      if (w.tokens.length - 1 > this.maxLength) {
        throw new Error(
          `window of ${w.tokens.length - 1} inputs exceeds maxLength ${this.maxLength}`,
        );
      }
      T = Math.max(T, w.tokens.length - 1);
    }
    // Padded length: a multiple of padMultiple, so batches of similar lengths share a plan.
    const Tp = Math.min(model.config.maxSeqLen, Math.ceil(T / this.padMultiple) * this.padMultiple);
    const ids = new Int32Array(B * Tp);
    const targets = new Int32Array(B * Tp);
    windows.forEach(({ tokens }, b) => {
      for (let t = 0; t < tokens.length - 1; t++) {
        const id = tokens[t]!;
        const next = tokens[t + 1]!;
        if (id < 0 || id >= V || next < 0 || next >= V) {
          throw new RangeError(`token id out of the vocabulary [0, ${V}) in window ${b}`);
        }
        ids[b * Tp + t] = id;
        targets[b * Tp + t] = next;
      }
    });
    const plan = model.plan(B, Tp, false);
    model.loadIds(plan.ids, ids, B * Tp);
    model.loadIds(plan.targets, targets, B * Tp);
    model.forward(plan, true);
    const losses = plan.losses.toFloat32();

    // is_greedy of one target = it is its row's argmax (torch.argmax: the first maximum), one
    // device op for the whole batch, only when a window asks for the flag.
    const argmax = windows.some((w) => w.greedyRanges) ? model.greedyTokens(plan) : null;
    return windows.map((window, b) => {
      const { tokens, scoreFrom } = window;
      const first = b * Tp + scoreFrom - 1;
      const n = tokens.length - scoreFrom;
      const logprobs = new Float64Array(n);
      for (let j = 0; j < n; j++) logprobs[j] = -losses[first + j]!;
      const greedy = rangesFromFlags(window, (t) => {
        const row = b * Tp + t - 1;
        return argmax![row] === targets[row];
      });
      return { logprobs, greedy };
    });
  }
}

/** The tokenizer file of a checkpoint directory, if it has one. */
export function checkpointTokenizerPath(dir: string): string | undefined {
  for (const name of ["tokenizer.model", "tokenizer.json"]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export interface LoadedModel {
  scorer: LlamaTokenScorer;
  tokenizer: LlamaTokenizer;
  tokenizerSource: string;
  device: string;
  dispose(): void;
}

/** Loads a checkpoint (this project's or a Hugging Face Llama directory) and its tokenizer. */
export async function loadCheckpoint(
  dirIn: string,
  options: {
    device?: "cpu" | "cuda" | "auto";
    /** Compute dtype; default the trainer's (f32 on CPU, bf16 on CUDA). */
    dtype?: "f32" | "bf16";
    tokenizer?: string;
    maxLength?: number;
    /** See LlamaTokenScorer's padMultiple. */
    padMultiple?: number;
  } = {},
): Promise<LoadedModel> {
  const [trainer, { LlamaTokenizer }] = await Promise.all([
    import("@tinyllama/trainer"),
    import("@tinyllama/tokenizer"),
  ]);
  // a stage or run directory means its newest checkpoint, whose tokenizer file is the one to use
  const dir = trainer.resolveWeightsDir(dirIn);
  const tokenizerSource = options.tokenizer ?? checkpointTokenizerPath(dir);
  const tokenizer = await LlamaTokenizer.load(tokenizerSource);
  const model = await trainer.LlamaModel.load(dir, {
    device: options.device ?? "auto",
    ...(options.dtype ? { computeDtype: options.dtype } : {}),
  });
  const device = model.backend.name;
  let scorer: LlamaTokenScorer;
  try {
    scorer = new LlamaTokenScorer(model, {
      maxLength: options.maxLength,
      ...(options.padMultiple !== undefined ? { padMultiple: options.padMultiple } : {}),
      description: `${dir} (${model.config.name}, ${device}, ${model.paramDtype})`,
    });
  } catch (e) {
    // e.g. --max-length past the model's context: the caller gets no dispose(), so free the
    // weights here rather than leave them to a GC
    model.dispose();
    throw e;
  }
  return {
    scorer,
    tokenizer,
    tokenizerSource: tokenizerSource ?? "bundled Llama 2 tokenizer",
    device,
    dispose: () => model.dispose(),
  };
}
