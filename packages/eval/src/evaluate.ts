/**
 * One evaluation run: build every task's requests, encode them, score all requests of all
 * tasks together (one sorted, prefix-shared stream, as the harness batches across tasks), then
 * compute per-doc metrics and aggregate them into a result shaped like the harness's output.
 */
import { DEFAULT_PAIR_ENCODING, encodePair, type PairEncodingOptions } from "./encode.js";
import { type DocScore, mean, meanStderr, scoreMultipleChoice } from "./metrics.js";
import { type ScoreOptions, type ScoreStats, scoreRequests } from "./score.js";
import type { DocRequests, Task } from "./tasks/task.js";
import type { EvalTokenizer, LogLikelihood, TokenRequest, TokenScorer } from "./types.js";

export interface TaskInput {
  task: Task<never>;
  docs: readonly unknown[];
  /** Where the docs came from, recorded in the results. */
  files?: readonly string[];
}

export interface EvaluateOptions extends ScoreOptions {
  encoding?: PairEncodingOptions;
  /** Evaluate only the first `limit` docs of each task (the harness's --limit). */
  limit?: number;
}

/** One doc's record, like the harness's --log_samples lines plus the token ids. */
export interface SampleRecord {
  doc_id: number;
  target: number;
  arguments: [string, string][];
  context_tokens: number[][];
  continuation_tokens: number[][];
  resps: [number, boolean | null][];
  choices: string[];
  acc: number;
  acc_norm: number;
}

export interface TaskResult {
  task: Task<never>;
  metrics: Record<string, number | "N/A">;
  nDocs: number;
  nOriginal: number;
  goldOutOfRange: number;
  samples: SampleRecord[];
  files: readonly string[];
}

export interface EvaluationOutput {
  tasks: TaskResult[];
  stats: ScoreStats;
  encoding: PairEncodingOptions;
}

interface BuiltDoc {
  docId: number;
  built: DocRequests;
  firstRequest: number;
  tokens: TokenRequest[];
}

export async function evaluate(
  inputs: readonly TaskInput[],
  tokenizer: EvalTokenizer,
  scorer: TokenScorer,
  options: EvaluateOptions = {},
): Promise<EvaluationOutput> {
  const encoding = options.encoding ?? DEFAULT_PAIR_ENCODING;
  const allRequests: TokenRequest[] = [];
  const perTask = inputs.map(({ task, docs }) => {
    const n = options.limit === undefined ? docs.length : Math.min(options.limit, docs.length);
    const built: BuiltDoc[] = [];
    for (let docId = 0; docId < n; docId++) {
      let requests: DocRequests;
      try {
        requests = task.build(task.parse(docs[docId]));
      } catch (e) {
        throw new Error(`${task.name} doc ${docId}: ${(e as Error).message}`);
      }
      const tokens = requests.requests.map((r) => encodePair(tokenizer, r, encoding));
      built.push({ docId, built: requests, firstRequest: allRequests.length, tokens });
      allRequests.push(...tokens);
    }
    return { task, built, nOriginal: docs.length };
  });

  // A request the harness rejects (empty context or continuation tokens, a continuation longer
  // than the model's context) is named by task, doc and request, not only by its index in the
  // stream of all tasks' requests (looked up only for the error).
  const describeRequest = (i: number): string => {
    for (const { task, built } of perTask)
      for (const { docId, firstRequest, tokens } of built)
        if (i >= firstRequest && i < firstRequest + tokens.length)
          return `${task.name} doc ${docId} request ${i - firstRequest}`;
    return `request ${i}`;
  };
  const { results, stats } = await scoreRequests(scorer, allRequests, {
    ...options,
    describeRequest,
  });

  const tasks = perTask.map(({ task, built, nOriginal }, t): TaskResult => {
    const scores: DocScore[] = [];
    const samples = built.map(({ docId, built: doc, firstRequest, tokens }) => {
      const lls: LogLikelihood[] = results.slice(firstRequest, firstRequest + tokens.length);
      const score = scoreMultipleChoice(
        lls.map((r) => r.logprob),
        doc.choices,
        doc.gold,
      );
      scores.push(score);
      return {
        doc_id: docId,
        target: doc.gold,
        arguments: doc.requests.map((r): [string, string] => [r.context, r.continuation]),
        context_tokens: tokens.map((r) => r.contextTokens),
        continuation_tokens: tokens.map((r) => r.continuationTokens),
        resps: lls.map((r): [number, boolean | null] => [r.logprob, r.isGreedy]),
        choices: doc.choices,
        acc: score.acc,
        acc_norm: score.acc_norm,
      };
    });
    const metrics: Record<string, number | "N/A"> = {};
    for (const m of task.metrics) {
      const values = scores.map((s) => s[m]);
      metrics[m] = values.length > 0 ? mean(values) : "N/A";
      metrics[`${m}_stderr`] = meanStderr(values);
    }
    return {
      task,
      metrics,
      nDocs: built.length,
      nOriginal,
      goldOutOfRange: scores.filter((s) => !s.goldInRange).length,
      samples,
      files: inputs[t]?.files ?? [],
    };
  });
  return { tasks, stats, encoding };
}
