/**
 * A full training checkpoint: the HF-loadable weights (config.json + model.safetensors, fp32
 * master weights), AdamW moments (optimizer.safetensors, `<param>.exp_avg` / `.exp_avg_sq`)
 * and trainer-state.json (counters, data position, schedule, run settings). Everything needed
 * to continue bit-exactly on CPU; the data position is O(1) state, never a batch count to replay.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StreamState } from "../data/stream.js";
import { type LlamaConfig, parameterSpecs, sameArchitecture } from "../model/config.js";
import type { AdamWConfig } from "../optim/adamw.js";
import type { CosineSchedule } from "../optim/schedule.js";
import { loadWeights, writeHfModel } from "./hf.js";
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from "./safetensors.js";
import { type CheckpointRef, commitCheckpoint } from "./store.js";

export const TRAINER_STATE_FILE = "trainer-state.json";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const TRAINER_STATE_FORMAT = "tinyllama-trainer-state/1";

export interface TrainerState {
  format: typeof TRAINER_STATE_FORMAT;
  model: LlamaConfig;
  stage: { stage: string; variant: string | null; dirName: string; scale: number };
  /** Global optimizer steps (across stages), the number in the checkpoint name. */
  step: number;
  /** The global step this stage started after (absent in checkpoints written before it was kept). */
  stageStartStep?: number;
  /** Global tokens trained (across stages): the LR schedule's coordinate. */
  tokensSeen: number;
  /** Tokens trained in this stage. */
  stageTokens: number;
  /** Tokens this stage trains in total. */
  stageBudget: number;
  adamStep: number;
  consecutiveBad: number;
  skippedSteps: number;
  stream: StreamState;
  seed: number;
  seqLen: number;
  microBatch: number;
  globalBatchSequences: number;
  schedule: CosineSchedule;
  adamw: AdamWConfig;
  elapsedSeconds: number;
  /** True when the stage trained its whole budget. */
  complete: boolean;
  createdAt: string;
}

/** What a checkpoint is written from: a Trainer, or host copies gathered from sharded ranks. */
export interface CheckpointSource {
  readonly config: LlamaConfig;
  /** fp32 (master) weights of one parameter. */
  readWeight(name: string): Float32Array;
  readMoment(which: "m" | "v", name: string): Float32Array;
}

/** What a checkpoint is loaded into: a Trainer, or one rank's shards (it keeps its slice). */
export interface CheckpointTarget {
  readonly config: LlamaConfig;
  setWeight(name: string, data: Float32Array): void;
  setMoment(which: "m" | "v", name: string, data: Float32Array): void;
}

export function saveTrainingCheckpoint(
  stageDir: string,
  trainer: CheckpointSource,
  state: TrainerState,
  keep: number,
): CheckpointRef {
  const names = parameterSpecs(trainer.config);
  return commitCheckpoint(stageDir, state.step, keep, (dir) => {
    writeHfModel(dir, trainer.config, (n) => trainer.readWeight(n));
    writeSafetensors(
      join(dir, OPTIMIZER_FILE),
      names.flatMap((s) => [
        {
          name: `${s.name}.exp_avg`,
          dtype: "F32" as const,
          shape: s.shape,
          data: () => trainer.readMoment("m", s.name),
        },
        {
          name: `${s.name}.exp_avg_sq`,
          dtype: "F32" as const,
          shape: s.shape,
          data: () => trainer.readMoment("v", s.name),
        },
      ]),
      { format: "tinyllama-adamw", adam_step: String(state.adamStep) },
    );
    writeFileSync(join(dir, TRAINER_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  });
}

export function readTrainerState(checkpointDir: string): TrainerState {
  const path = join(checkpointDir, TRAINER_STATE_FILE);
  let s: TrainerState;
  try {
    s = JSON.parse(readFileSync(path, "utf8")) as TrainerState;
  } catch (e) {
    throw new Error(`${path}: unreadable trainer state (${(e as Error).message})`);
  }
  if (s.format !== TRAINER_STATE_FORMAT) {
    throw new Error(
      `${path}: format ${JSON.stringify(s.format)}, expected ${TRAINER_STATE_FORMAT}`,
    );
  }
  return s;
}

/** Throws when a checkpoint's architecture differs from the model being trained. */
export function assertSameModel(dir: string, have: LlamaConfig, want: LlamaConfig): void {
  const diff = sameArchitecture(have, want);
  if (diff) {
    throw new Error(
      `checkpoint ${dir} is a ${have.name} model and does not fit --model ${want.name} (${diff}); ` +
        `pass --model ${have.name === "custom" ? "<matching model>" : have.name} or another checkpoint`,
    );
  }
}

/** Loads weights (this project's or any HF Llama dir) into the trainer; returns the dir used. */
export function loadWeightsInto(trainer: CheckpointTarget, dir: string): string {
  const w = loadWeights(dir);
  assertSameModel(w.dir, w.config, trainer.config);
  for (const s of parameterSpecs(trainer.config)) trainer.setWeight(s.name, w.read(s.name));
  return w.dir;
}

/** Loads AdamW moments saved by `saveTrainingCheckpoint`. */
export function loadOptimizerInto(trainer: CheckpointTarget, checkpointDir: string): void {
  const path = join(checkpointDir, OPTIMIZER_FILE);
  const h = readSafetensorsHeader(path);
  for (const s of parameterSpecs(trainer.config)) {
    trainer.setMoment("m", s.name, readTensorF32(path, h, `${s.name}.exp_avg`));
    trainer.setMoment("v", s.name, readTensorF32(path, h, `${s.name}.exp_avg_sq`));
  }
}

/**
 * Why a checkpoint directory cannot be resumed from (unreadable state, missing or truncated
 * safetensors), or null when it looks complete. Reads only headers: O(1) in the model size.
 */
export function checkpointProblem(dir: string): string | null {
  try {
    readTrainerState(dir);
    readSafetensorsHeader(join(dir, "model.safetensors"));
    readSafetensorsHeader(join(dir, OPTIMIZER_FILE));
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
