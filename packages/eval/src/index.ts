/**
 * Public entry point of @tinyllama/eval: zero-shot tasks scored exactly as lm-evaluation-harness
 * does, perplexity on held-out shards, and the pieces to plug in a model.
 */

export { findCheckpoints, newestCheckpoint } from "./checkpoints.js";
export {
  type DocSource,
  FIXTURES_DIR,
  fixturePath,
  hubLayoutFiles,
  hubTaskFiles,
  type LoadedDocs,
  loadTaskDocs,
  PARQUET_REVISION,
  readTaskRecords,
} from "./docs.js";
export { DEFAULT_PAIR_ENCODING, encodePair, type PairEncodingOptions } from "./encode.js";
export {
  type EvaluateOptions,
  type EvaluationOutput,
  evaluate,
  type SampleRecord,
  type TaskInput,
  type TaskResult,
} from "./evaluate.js";
export { LlamaTokenScorer, loadCheckpoint, type SequenceScoringModel } from "./llama.js";
export { argmax, mean, meanStderr, scoreMultipleChoice } from "./metrics.js";
export {
  type BlockSource,
  type PerplexityResult,
  pickBlocks,
  shardPerplexity,
} from "./perplexity.js";
export {
  BBH_CONFIGS,
  BENCHMARK_NAMES,
  BENCHMARKS,
  type BenchmarkName,
  type GenItem,
} from "./problem-solving/benchmarks.js";
export { loadBenchmark } from "./problem-solving/data.js";
export { dropMetrics, dropScore, normalizeDropAnswer } from "./problem-solving/drop-metrics.js";
export { LlamaTextGenerator } from "./problem-solving/llama-generator.js";
export { PyRandom } from "./problem-solving/pyrandom.js";
export { formatTable4, PAPER_TABLE4, toProblemSolvingJson } from "./problem-solving/results.js";
export {
  type BenchmarkInput,
  type BenchmarkResult,
  runBenchmark,
  type TextGenerator,
} from "./problem-solving/runner.js";
export {
  type ExecResult,
  probeSandbox,
  runPrograms,
  runPython,
  SandboxError,
  sandboxDescription,
} from "./problem-solving/sandbox.js";
export {
  formatPaperView,
  formatTable,
  type HarnessResults,
  PAPER_REFERENCE,
  paperView,
  type RunInfo,
  toHarnessJson,
} from "./results.js";
export {
  requestWindow,
  type ScoreOptions,
  type ScoreProgress,
  type ScoreStats,
  scoreRequests,
} from "./score.js";
export { resolveTasks, TASK_GROUPS, TASKS } from "./tasks/index.js";
export {
  contextsWithSharedContinuation,
  contextWithChoices,
  type DatasetRef,
  type DocRequests,
  DocSchemaError,
  defineTask,
  fields,
  TARGET_DELIMITER,
  type Task,
} from "./tasks/task.js";
export {
  logNormalize,
  positionalBigramScorer,
  ToyScorer,
  ToyWordTokenizer,
  unigramScorer,
} from "./toy.js";
export type {
  EvalTokenizer,
  LogLikelihood,
  ScoreWindow,
  TextRequest,
  TokenRequest,
  TokenScorer,
  WindowScores,
} from "./types.js";
