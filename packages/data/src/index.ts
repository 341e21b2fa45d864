/**
 * Public entry point of @tinyllama/data. See this package's README for what it owns.
 */
export * from "./shards/index.js";
export * from "./document.js";
export { SOURCES, getSource, type SourceDefinition } from "./sources/index.js";
export { readRecords, formatOf, type InputFormat, type RawRecord } from "./io/records.js";
export { globToRegExp, matchAny } from "./io/glob.js";
export { listHubFiles, downloadToCache, hubOptionsFromEnv, HubError, type HubOptions, type HubFile } from "./hub/hub.js";
export {
  MinHasher,
  DEFAULT_MINHASH,
  collisionProbability,
  jaccard,
  shingleHashes,
  wordHashes,
  type MinHashParams,
} from "./dedup/minhash.js";
export {
  type PrepareConfig,
  type SourceInput,
  DEFAULTS,
  resolveConfig,
  loadConfigFile,
  sampleConfig,
  sampleDir,
  ConfigError,
} from "./pipeline/config.js";
export { makePlan, loadOrMakePlan, readPlan, type Plan, type StageName } from "./pipeline/plan.js";
export { runTask, type TaskStats } from "./pipeline/stages.js";
export { bytesTokenizer, loadPipelineTokenizer, type PipelineTokenizer } from "./pipeline/tokenizer.js";
export { summarize } from "./pipeline/summary.js";
export { runLocal, type LocalOptions } from "./executors/local.js";
export { writeSlurmScripts, type SlurmOptions } from "./executors/slurm.js";
