/**
 * Adapts the trainer's `LlamaModel` (forward-only `scoreSequences`) to the eval's `TokenScorer`,
 * and loads a checkpoint with its tokenizer. The model is typed structurally here so the
 * adapter is testable without native kernels.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { LlamaTokenizer } from "@tinyllama/tokenizer";
import type { ScoreWindow, TokenScorer, WindowScores } from "./types.js";

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

export class LlamaTokenScorer implements TokenScorer {
  readonly maxLength: number;
  readonly description: string;

  constructor(
    private readonly model: SequenceScoringModel,
    options: { maxLength?: number; description?: string } = {},
  ) {
    const max = options.maxLength ?? model.config.maxSeqLen;
    if (max > model.config.maxSeqLen) {
      throw new RangeError(
        `maxLength ${max} exceeds the model's context of ${model.config.maxSeqLen} tokens`,
      );
    }
    this.maxLength = max;
    this.description =
      options.description ?? `LlamaModel on ${model.backend?.name ?? "unknown device"}`;
  }

  async scoreWindows(windows: ScoreWindow[]): Promise<WindowScores[]> {
    const scores = this.model.scoreSequences(
      windows.map((w) => w.tokens),
      { batchSize: windows.length },
    );
    if (scores.length !== windows.length) {
      throw new Error(`LlamaModel returned ${scores.length} results for ${windows.length} windows`);
    }
    // scoreSequences: logProbs[t] = log p(ids[t+1] | ids[..t]); a window's target i is t = i - 1.
    return scores.map((s, i) => {
      const from = windows[i]!.scoreFrom - 1;
      return {
        logprobs: Float64Array.from(
          { length: s.logProbs.length - from },
          (_, j) => s.logProbs[from + j]!,
        ),
        greedy: Uint8Array.from({ length: s.greedy.length - from }, (_, j) => s.greedy[from + j]!),
      };
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
  dir: string,
  options: { device?: "cpu" | "cuda" | "auto"; tokenizer?: string; maxLength?: number } = {},
): Promise<LoadedModel> {
  const [{ LlamaModel }, { LlamaTokenizer }] = await Promise.all([
    import("@tinyllama/trainer"),
    import("@tinyllama/tokenizer"),
  ]);
  const tokenizerSource = options.tokenizer ?? checkpointTokenizerPath(dir);
  const tokenizer = await LlamaTokenizer.load(tokenizerSource);
  const model = await LlamaModel.load(dir, { device: options.device ?? "auto" });
  const device = model.backend.name;
  const scorer = new LlamaTokenScorer(model, {
    maxLength: options.maxLength,
    description: `${dir} (${model.config.name}, ${device})`,
  });
  return {
    scorer,
    tokenizer,
    tokenizerSource: tokenizerSource ?? "bundled Llama 2 tokenizer",
    device,
    dispose: () => model.dispose(),
  };
}
