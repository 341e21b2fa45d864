/**
 * Public entry point of @tinyllama/data. See this package's README for what it owns.
 */

export { pidAlive } from "./dedup/files.js";
export {
  collisionProbability,
  DEFAULT_MINHASH,
  jaccard,
  MinHasher,
  type MinHashParams,
  shingleHashes,
  wordHashes,
} from "./dedup/minhash.js";
export * from "./document.js";
export { type LocalOptions, runLocal } from "./executors/local.js";
export { type SlurmOptions, writeSlurmScripts } from "./executors/slurm.js";
export {
  type DownloadOptions,
  downloadToCache,
  HubError,
  type HubFile,
  type HubOptions,
  hubOptionsFromEnv,
  listHubFiles,
  resolveHubRevision,
} from "./hub/hub.js";
export {
  type FileListing,
  globToRegExp,
  listInputFiles,
  matchAny,
  type SkippedEntry,
} from "./io/glob.js";
export { formatOf, type InputFormat, type RawRecord, readRecords } from "./io/records.js";
export {
  ConfigError,
  DEFAULTS,
  loadConfigFile,
  type PrepareConfig,
  resolveConfig,
  type SourceInput,
  sampleConfig,
  sampleDir,
  type UserConfig,
} from "./pipeline/config.js";
export {
  loadOrMakePlan,
  makePlan,
  type Plan,
  type PlannedSource,
  readPlan,
  type StageName,
} from "./pipeline/plan.js";
export { runTask, type TaskStats } from "./pipeline/stages.js";
export { summarize } from "./pipeline/summary.js";
export {
  bundledLlamaTokenizer,
  bytesTokenizer,
  loadPipelineTokenizer,
  type PipelineTokenizer,
  tokenizerIdentity,
  wrapLlamaTokenizer,
} from "./pipeline/tokenizer.js";
export * from "./shards/index.js";
export { getSource, SOURCES, type SourceDefinition } from "./sources/index.js";
