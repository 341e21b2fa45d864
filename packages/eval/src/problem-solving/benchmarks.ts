/**
 * The four problem-solving benchmarks of the paper's Table 4 as InstructEval runs them: where
 * their data lives on the hub, how its records parse, which documents are examples and which are
 * evaluated, and each evaluated item's prompts (one per shot count, so the runner can drop shots
 * that do not fit) and check.
 */
import { pyLstrip, pyStrip } from "../pytext.js";
import { fields } from "../tasks/task.js";
import { dropScore } from "./drop-metrics.js";
import {
  type BbhSample,
  bbhPrompt,
  type DropSample,
  dropPrompt,
  humanevalCompletion,
  humanevalProgram,
  humanevalPrompt,
  humanevalSettled,
  LETTERS,
  labelSettled,
  type MmluQuestion,
  mmluPrompt,
  startsWithLabel,
} from "./prompts.js";
import { PyRandom } from "./pyrandom.js";

export type BenchmarkName = "mmlu" | "bbh" | "drop" | "humaneval";
export const BENCHMARK_NAMES: readonly BenchmarkName[] = ["mmlu", "bbh", "drop", "humaneval"];

export interface SplitSpec {
  path: string;
  name: string | null;
  split: string;
}

export interface BenchmarkSpec {
  name: BenchmarkName;
  /** InstructEval's shot count. */
  shots: number;
  /** InstructEval's max_input_length (prompt tokens with BOS) before shots are dropped; null: never checked. */
  maxInputTokens: number | null;
  /** InstructEval's max_output_length (max_new_tokens). */
  maxNewTokens: number;
  /** Main metric first; as keys of the results. */
  metrics: readonly string[];
}

export const BENCHMARKS: Readonly<Record<BenchmarkName, BenchmarkSpec>> = {
  mmlu: { name: "mmlu", shots: 5, maxInputTokens: 2048, maxNewTokens: 2, metrics: ["acc"] },
  bbh: { name: "bbh", shots: 3, maxInputTokens: 2048, maxNewTokens: 32, metrics: ["exact_match"] },
  drop: {
    name: "drop",
    shots: 3,
    maxInputTokens: 2048,
    maxNewTokens: 8,
    metrics: ["score", "em", "f1"],
  },
  humaneval: {
    name: "humaneval",
    shots: 0,
    maxInputTokens: null,
    maxNewTokens: 512,
    metrics: ["pass@1"],
  },
};

/** lukaemon/bbh's configs (get_dataset_config_names order): the 23 BBH tasks, 3 of them split by object count. */
export const BBH_CONFIGS = [
  "boolean_expressions",
  "causal_judgement",
  "date_understanding",
  "disambiguation_qa",
  "dyck_languages",
  "formal_fallacies",
  "geometric_shapes",
  "hyperbaton",
  "logical_deduction_five_objects",
  "logical_deduction_seven_objects",
  "logical_deduction_three_objects",
  "movie_recommendation",
  "multistep_arithmetic_two",
  "navigate",
  "object_counting",
  "penguins_in_a_table",
  "reasoning_about_colored_objects",
  "ruin_names",
  "salient_translation_error_detection",
  "snarks",
  "sports_understanding",
  "temporal_sequences",
  "tracking_shuffled_objects_five_objects",
  "tracking_shuffled_objects_seven_objects",
  "tracking_shuffled_objects_three_objects",
  "web_of_lies",
  "word_sorting",
] as const;

/** Hub splits each benchmark reads (BBH: one per config). */
export function benchmarkSplits(
  name: BenchmarkName,
  bbhConfigs: readonly string[] = BBH_CONFIGS,
): Record<string, SplitSpec> {
  switch (name) {
    case "mmlu":
      return {
        dev: { path: "cais/mmlu", name: "all", split: "dev" },
        test: { path: "cais/mmlu", name: "all", split: "test" },
      };
    case "bbh":
      return Object.fromEntries(
        bbhConfigs.map((c) => [c, { path: "lukaemon/bbh", name: c, split: "test" }]),
      );
    case "drop":
      return { validation: { path: "ucinlp/drop", name: null, split: "validation" } };
    case "humaneval":
      return { test: { path: "openai/openai_humaneval", name: "openai_humaneval", split: "test" } };
  }
}

/** One evaluated document. */
export interface GenItem {
  /** Subject / BBH config / the benchmark name: results are also reported per group. */
  group: string;
  id: string;
  /** prompts[k] has k shots (k = 0 .. shots). */
  prompts: string[];
  /** True when more tokens cannot change the verdict (generation may stop). */
  settled(text: string): boolean;
  /** Metrics of the decoded generation (HumanEval: null here, scored by running programs). */
  score(completion: string): Record<string, number> | null;
  /** HumanEval: the program that tests the completion. */
  program?(completion: string): string;
  label: string;
}

// ---- record parsing ---------------------------------------------------------------------

/** Names record i of a split in errors (the loader passes the file and the row within it). */
export type RecordLocator = (i: number) => string;

function parseMmlu(raw: unknown, where: string): MmluQuestion {
  const f = fields(where, raw);
  const r = raw as { choices?: unknown; answer?: unknown };
  if (!Array.isArray(r.choices) || r.choices.some((c) => typeof c !== "string")) {
    throw new Error(`${where}: choices must be a list of strings`);
  }
  const answer = typeof r.answer === "bigint" ? Number(r.answer) : r.answer;
  if (
    typeof answer !== "number" ||
    !Number.isInteger(answer) ||
    answer < 0 ||
    answer >= r.choices.length
  ) {
    throw new Error(`${where}: answer must be an index into choices, got ${String(r.answer)}`);
  }
  return {
    subject: f.string("subject"),
    question: f.string("question"),
    choices: r.choices as string[],
    answer,
  };
}

export function mmluItems(
  devRaw: readonly unknown[],
  testRaw: readonly unknown[],
  shots = 5,
  where: { dev: RecordLocator; test: RecordLocator } = {
    dev: (i) => `mmlu dev row ${i}`,
    test: (i) => `mmlu test row ${i}`,
  },
): GenItem[] {
  const dev = new Map<string, MmluQuestion[]>();
  devRaw.forEach((r, i) => {
    const q = parseMmlu(r, where.dev(i));
    const list = dev.get(q.subject) ?? [];
    list.push(q);
    dev.set(q.subject, list);
  });
  const tests = testRaw.map((r, i) => ({ q: parseMmlu(r, where.test(i)), i }));
  // mmlu.py walks subjects in sorted order, each subject's test file in order.
  tests.sort((a, b) =>
    a.q.subject < b.q.subject ? -1 : a.q.subject > b.q.subject ? 1 : a.i - b.i,
  );
  return tests.map(({ q, i }) => {
    const examples = (dev.get(q.subject) ?? []).slice(0, shots);
    if (examples.length < shots) {
      throw new Error(
        `mmlu: subject ${q.subject} has ${examples.length} dev questions, ${shots}-shot needs ${shots}`,
      );
    }
    const label = LETTERS[q.answer]!;
    return {
      group: q.subject,
      id: `${q.subject}/${i}`,
      prompts: Array.from({ length: shots + 1 }, (_, k) => mmluPrompt(examples, q, k)),
      settled: (text) => labelSettled(text, label),
      score: (completion) => ({ acc: startsWithLabel(completion, label) ? 1 : 0 }),
      label,
    };
  });
}

function parseBbh(raw: unknown, where: string): BbhSample {
  const f = fields(where, raw);
  return { input: f.string("input"), target: f.string("target") };
}

/** bbh.py: the first `shots` samples of each config are the examples, the rest are evaluated. */
export function bbhItems(
  config: string,
  raw: readonly unknown[],
  shots = 3,
  where: RecordLocator = (i) => `bbh ${config} row ${i}`,
): GenItem[] {
  const samples = raw.map((r, i) => parseBbh(r, where(i)));
  if (samples.length <= shots)
    throw new Error(`bbh ${config}: ${samples.length} samples, need more than ${shots}`);
  const examples = samples.slice(0, shots);
  return samples.slice(shots).map((s, j) => ({
    group: config,
    id: `${config}/${j + shots}`,
    prompts: Array.from({ length: shots + 1 }, (_, k) => bbhPrompt(examples, s, k)),
    settled: (text) => labelSettled(text, s.target),
    score: (completion) => ({ exact_match: startsWithLabel(completion, s.target) ? 1 : 0 }),
    label: s.target,
  }));
}

function parseDrop(raw: unknown, where: string): DropSample {
  const f = fields(where, raw);
  const spans = (raw as { answers_spans?: { spans?: unknown } }).answers_spans?.spans;
  if (!Array.isArray(spans) || spans.length === 0 || spans.some((s) => typeof s !== "string")) {
    throw new Error(`${where}: answers_spans.spans must be a non-empty list of strings`);
  }
  return {
    query_id: f.string("query_id"),
    passage: f.string("passage"),
    question: f.string("question"),
    answers: (spans as string[]).map((s) => pyStrip(s)),
  };
}

/**
 * drop.py: keep questions whose answer spans are all the same text, draw the 3 examples with
 * Python's random.seed(0) + random.sample, evaluate the questions on other passages.
 */
export function dropItems(
  raw: readonly unknown[],
  shots = 3,
  where: RecordLocator = (i) => `drop row ${i}`,
): { items: GenItem[]; filtered: number; train: string[] } {
  const all = raw.map((r, i) => parseDrop(r, where(i)));
  const kept = all.filter((s) => new Set(s.answers).size === 1);
  if (kept.length < shots)
    throw new Error(`drop: ${kept.length} questions with one answer, need at least ${shots}`);
  const train = new PyRandom(0).sample(kept, shots);
  const trainPassages = new Set(train.map((s) => s.passage));
  const test = kept.filter((s) => !trainPassages.has(s.passage));
  const items = test.map((s) => {
    const label = s.answers[0]!;
    return {
      group: "drop",
      id: s.query_id,
      prompts: Array.from({ length: shots + 1 }, (_, k) => dropPrompt(train, s, k)),
      // The verdict and the first line (EM/F1) must both be final.
      settled: (text: string) => labelSettled(text, label) && pyLstrip(text).includes("\n"),
      score: (completion: string) => {
        // Official EM/F1 on the answer's first line (the generation runs on into the next example).
        // answers_spans.spans concatenates the validated answers (one span each after the
        // filter above): each is its own gold answer, as drop_eval's max over answers takes them,
        // not the spans of one multi-span answer (which would halve F1 and zero EM).
        const answer = pyStrip(completion).split("\n")[0] ?? "";
        const { em, f1 } = dropScore(
          [answer],
          s.answers.map((a) => [a]),
        );
        return { score: startsWithLabel(completion, label) ? 1 : 0, em, f1 };
      },
      label,
    };
  });
  return { items, filtered: all.length - kept.length, train: train.map((s) => s.query_id) };
}

export interface HumanEvalProblem {
  task_id: string;
  prompt: string;
  test: string;
  entry_point: string;
}

export function humanevalItems(
  raw: readonly unknown[],
  where: RecordLocator = (i) => `humaneval row ${i}`,
): GenItem[] {
  return raw.map((r, i) => {
    const f = fields(where(i), r);
    const p: HumanEvalProblem = {
      task_id: f.string("task_id"),
      prompt: f.string("prompt"),
      test: f.string("test"),
      entry_point: f.string("entry_point"),
    };
    return {
      group: "humaneval",
      id: p.task_id,
      prompts: [humanevalPrompt(p.prompt)],
      settled: humanevalSettled,
      score: () => null,
      program: (completion: string) => humanevalProgram(p, humanevalCompletion(completion)),
      label: p.entry_point,
    };
  });
}
