/** Tiny configs and helpers shared by the trainer's tests (not exported from the package). */
import type { LlamaConfig } from "../model/config.js";
import { modelConfig } from "../model/config.js";

/** A tiny model with a 64-token vocabulary, for exact gradient checks in milliseconds. */
export function microConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    ...modelConfig("tinyllama-test"),
    name: "micro",
    vocabSize: 64,
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    maxSeqLen: 64,
    ...over,
  };
}
