/**
 * @tinyllama/data/mixture: a dependency-free scheduled mixture sampler (pure TypeScript, no
 * Node APIs), importable without the rest of the data package. See README.md beside this file.
 */
export {
  BLOCK_ORDER_STATE_FORMAT,
  BlockOrderError,
  type BlockOrderState,
  type BlockRef,
  type ShardFileBlocks,
  SourceBlockOrder,
  type SourceBlockOrderOptions,
} from "./block-order.js";
export { FeistelPermutation } from "./permutation.js";
export { renderReportSvg } from "./plot.js";
export {
  CONTINUAL_RAMP_TOKENS,
  isPresetName,
  PAPER_SHARES,
  PRESET_NAMES,
  type PresetName,
  preset,
  SOURCE_NAMES,
  type SourceName,
  STAGE_TOKENS,
} from "./presets.js";
export {
  describeSchedule,
  formatDeviation,
  formatTokens,
  type ReportWindow,
  type StageReport,
  type StageReportOptions,
  simulateStage,
} from "./report.js";
export {
  DEFAULT_BLOCK_TOKENS,
  MIXTURE_MODES,
  MIXTURE_STATE_FORMAT,
  type MixtureMode,
  type MixturePick,
  MixtureSampler,
  type MixtureSamplerOptions,
  type MixtureState,
  MixtureStateError,
  type RankOptions,
} from "./sampler.js";
export {
  CompiledSchedule,
  checkSchedule,
  constantSchedule,
  type MixturePoint,
  type MixtureSchedule,
  ScheduleError,
  scaleSchedule,
} from "./schedule.js";
