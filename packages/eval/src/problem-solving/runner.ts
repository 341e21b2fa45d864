/**
 * Runs a problem-solving benchmark: picks each item's prompt (the most shots that fit the
 * benchmark's input limit, as InstructEval's `while not check_valid_length(prompt): k -= 1`),
 * generates all of them in batches through a `TextGenerator`, scores the completions (HumanEval:
 * by running the programs in the sandbox) and aggregates as InstructEval does: MMLU over all
 * questions, BBH as the mean of the per-task scores, DROP and HumanEval over all items.
 */
import { meanStderr } from "../metrics.js";
import { BENCHMARKS, type BenchmarkName, type GenItem } from "./benchmarks.js";
import { type ExecResult, runPrograms, type SandboxOptions } from "./sandbox.js";

/** The model as the problem-solving benchmarks see it. */
export interface TextGenerator {
  readonly description: string;
  /** Tokens of a prompt as it will be fed (with BOS), for InstructEval's length check. */
  countTokens(prompt: string): number;
  /**
   * Greedy (or sampled) continuations of every prompt, decoded as transformers' decode of the new
   * tokens (skip_special_tokens). `settled(i, text)` lets a generation end once its verdict cannot
   * change.
   */
  generate(
    prompts: readonly string[],
    opts: {
      maxNewTokens: number;
      settled?: (index: number, text: string) => boolean;
      onDone?: (index: number, tokens: number) => void;
    },
  ): Promise<string[]>;
  /**
   * For each prompt, the next-token logit of the first token of each continuation (e.g. " A"),
   * encoded as a pair with the prompt: MMLU's log-likelihood mode.
   */
  choiceLogits?(prompts: readonly string[], continuations: readonly string[]): Promise<number[][]>;
}

export interface BenchmarkInput {
  name: BenchmarkName;
  items: GenItem[];
  files: readonly string[];
  /** Facts about the data worth recording (filtered items, example ids, configs that ran). */
  notes?: Record<string, unknown>;
}

export interface ProblemSample {
  id: string;
  group: string;
  shots: number;
  prompt_tokens: number;
  prompt: string;
  completion: string;
  label: string;
  metrics: Record<string, number>;
  exec?: ExecResult;
}

export interface BenchmarkResult {
  name: BenchmarkName;
  metrics: Record<string, number>;
  stderr: Record<string, number | "N/A">;
  groups: Record<string, { n: number; metrics: Record<string, number> }>;
  nItems: number;
  nOriginal: number;
  /** Items whose prompt lost shots to fit maxInputTokens. */
  shotsDropped: number;
  /** Items still over maxInputTokens with no shots (run anyway, as InstructEval). */
  overLimit: number;
  generatedTokens: number;
  seconds: number;
  files: readonly string[];
  notes: Record<string, unknown>;
  samples: ProblemSample[];
}

export interface RunOptions {
  /** First n items of each group (MMLU subject, BBH task) or of the benchmark. */
  limit?: number;
  /** Stop a generation once its verdict is settled (same scores, fewer tokens). Default true. */
  earlyStop?: boolean;
  sandbox?: SandboxOptions & { workers?: number };
  progress?: (line: string) => void;
  /**
   * MMLU: "generate" (InstructEval: greedy 2 tokens, startswith the letter; default) or "loglik"
   * (the letter whose token the model scores highest after the prompt, as Hendrycks' original
   * evaluation and InstructEval's get_choice).
   */
  mmluMode?: "generate" | "loglik";
}

function limitPerGroup(items: GenItem[], limit: number | undefined): GenItem[] {
  if (limit === undefined) return items;
  const seen = new Map<string, number>();
  return items.filter((it) => {
    const n = seen.get(it.group) ?? 0;
    seen.set(it.group, n + 1);
    return n < limit;
  });
}

export async function runBenchmark(
  input: BenchmarkInput,
  generator: TextGenerator,
  opts: RunOptions = {},
): Promise<BenchmarkResult> {
  const spec = BENCHMARKS[input.name];
  const items = limitPerGroup(input.items, opts.limit);
  const t0 = performance.now();
  let shotsDropped = 0;
  let overLimit = 0;
  const chosen = items.map((it) => {
    let k = it.prompts.length - 1;
    let n = generator.countTokens(it.prompts[k]!);
    while (spec.maxInputTokens !== null && n > spec.maxInputTokens && k > 0) {
      k--;
      n = generator.countTokens(it.prompts[k]!);
    }
    if (k < it.prompts.length - 1) shotsDropped++;
    if (spec.maxInputTokens !== null && n > spec.maxInputTokens) overLimit++;
    return { prompt: it.prompts[k]!, shots: k, tokens: n };
  });
  if (input.name === "mmlu" && opts.mmluMode === "loglik") {
    return scoreMmluByLogits(input, items, chosen, generator, t0, shotsDropped, overLimit);
  }
  let done = 0;
  let generated = 0;
  let lastReport = performance.now();
  const completions = await generator.generate(
    chosen.map((c) => c.prompt),
    {
      maxNewTokens: spec.maxNewTokens,
      ...(opts.earlyStop === false
        ? {}
        : { settled: (i: number, text: string) => items[i]!.settled(text) }),
      onDone: (_i, tokens) => {
        done++;
        generated += tokens;
        const now = performance.now();
        if (opts.progress && (now - lastReport > 2000 || done === items.length)) {
          lastReport = now;
          const s = (now - t0) / 1000;
          const eta = done > 0 ? (s / done) * (items.length - done) : 0;
          opts.progress(
            `${input.name}: ${done}/${items.length} prompts, ${(done / s).toFixed(1)} prompts/s, ${(generated / s).toFixed(0)} new tokens/s, ETA ${eta.toFixed(0)} s`,
          );
        }
      },
    },
  );
  const samples: ProblemSample[] = items.map((it, i) => ({
    id: it.id,
    group: it.group,
    shots: chosen[i]!.shots,
    prompt_tokens: chosen[i]!.tokens,
    prompt: chosen[i]!.prompt,
    completion: completions[i]!,
    label: it.label,
    metrics: it.score(completions[i]!) ?? {},
  }));
  if (input.name === "humaneval") {
    const programs = items.map((it, i) => it.program!(completions[i]!));
    const results = await runPrograms(programs, opts.sandbox ?? {});
    results.forEach((r, i) => {
      samples[i]!.exec = r;
      samples[i]!.metrics = { "pass@1": r.status === "passed" ? 1 : 0 };
    });
  }
  return aggregate(input, items, samples, { t0, shotsDropped, overLimit, generated });
}

const MMLU_LETTERS = ["A", "B", "C", "D"];

async function scoreMmluByLogits(
  input: BenchmarkInput,
  items: GenItem[],
  chosen: { prompt: string; shots: number; tokens: number }[],
  generator: TextGenerator,
  t0: number,
  shotsDropped: number,
  overLimit: number,
): Promise<BenchmarkResult> {
  if (!generator.choiceLogits)
    throw new Error("mmlu loglik mode: this generator cannot score choices");
  const logits = await generator.choiceLogits(
    chosen.map((c) => c.prompt),
    MMLU_LETTERS.map((l) => ` ${l}`),
  );
  const samples: ProblemSample[] = items.map((it, i) => {
    const row = logits[i]!;
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    const pred = MMLU_LETTERS[best]!;
    return {
      id: it.id,
      group: it.group,
      shots: chosen[i]!.shots,
      prompt_tokens: chosen[i]!.tokens,
      prompt: chosen[i]!.prompt,
      completion: ` ${pred}`,
      label: it.label,
      metrics: { acc: pred === it.label ? 1 : 0 },
    };
  });
  return aggregate(input, items, samples, { t0, shotsDropped, overLimit, generated: 0 });
}

function aggregate(
  input: BenchmarkInput,
  items: GenItem[],
  samples: ProblemSample[],
  run: { t0: number; shotsDropped: number; overLimit: number; generated: number },
): BenchmarkResult {
  const spec = BENCHMARKS[input.name];
  const { t0, shotsDropped, overLimit, generated } = run;
  const groups: BenchmarkResult["groups"] = {};
  const byGroup = new Map<string, ProblemSample[]>();
  for (const s of samples) {
    const list = byGroup.get(s.group) ?? [];
    list.push(s);
    byGroup.set(s.group, list);
  }
  for (const [g, list] of byGroup) {
    groups[g] = {
      n: list.length,
      metrics: Object.fromEntries(
        spec.metrics.map((m) => [m, mean(list.map((s) => s.metrics[m] ?? 0))]),
      ),
    };
  }
  const metrics: Record<string, number> = {};
  const stderr: Record<string, number | "N/A"> = {};
  for (const m of spec.metrics) {
    if (input.name === "bbh") {
      // bbh.py: the average of the tasks' scores (each task weighs the same).
      metrics[m] = mean(Object.values(groups).map((g) => g.metrics[m]!));
      stderr[m] = "N/A";
    } else {
      const values = samples.map((s) => s.metrics[m] ?? 0);
      metrics[m] = mean(values);
      stderr[m] = meanStderr(values);
    }
  }
  return {
    name: input.name,
    metrics,
    stderr,
    groups,
    nItems: items.length,
    nOriginal: input.items.length,
    shotsDropped,
    overLimit,
    generatedTokens: generated,
    seconds: (performance.now() - t0) / 1000,
    files: input.files,
    notes: input.notes ?? {},
    samples,
  };
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}
