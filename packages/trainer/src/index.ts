/**
 * Public entry point of @tinyllama/trainer: model configs, LlamaModel (forward-only scoring for
 * eval, forward/backward for training), the LR schedule, stages, checkpoints and safetensors.
 */

export { loadWeights, resolveWeightsDir, writeHfModel } from "./checkpoint/hf.js";
export {
  readSafetensorsHeader,
  readTensorF32,
  writeSafetensors,
} from "./checkpoint/safetensors.js";
export { checkpointName, latestCheckpoint, listCheckpoints } from "./checkpoint/store.js";
export {
  type FinishReason,
  type GenerateOptions,
  type Generation,
  type GenerationEvent,
  generate,
  generateEvents,
  generateStream,
  streamSeed,
  type TokenEvent,
} from "./generate/generate.js";
export { type DecoderOptions, KvDecoder, type Segment } from "./generate/kv-decoder.js";
export { argmax, type SamplingOptions, TokenSampler } from "./generate/sampling.js";
export {
  fromHfConfig,
  headDim,
  type LlamaConfig,
  MODEL_CONFIGS,
  modelConfig,
  type ParamSpec,
  parameterCount,
  parameterSpecs,
  toHfConfig,
  trainFlopsPerToken,
  validateConfig,
} from "./model/config.js";
export type { Backend, DeviceName, Tensor } from "./model/kernels.js";
export { loadKernels } from "./model/kernels.js";
export {
  LlamaModel,
  type LoadOptions,
  type SequenceScores,
  type TokenSequence,
} from "./model/llama.js";
export {
  type CosineSchedule,
  describeSchedule,
  learningRate,
  validateSchedule,
} from "./optim/schedule.js";
export {
  parseStage,
  parseVariant,
  STAGE_NAMES,
  type StageName,
  type StageSpec,
  stageSpec,
  VARIANTS,
  type Variant,
} from "./stages/stages.js";
