/**
 * `pnpm train`: flags -> resolved RunOptions -> runStage. Device-dependent defaults: on a GPU
 * the paper's setup (tinyllama-1.1b, 2048-token sequences, full token budgets); on CPU a small
 * model on short sequences with every budget scaled by 2e-8, so the default run takes a
 * minute or two and still shows the loss falling.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  bundledLlamaTokenizer,
  type ShardManifest,
  type TokenizerIdentity,
  tokenizerIdentity,
} from "@tinyllama/data";
import { preset } from "@tinyllama/data/mixture";
import { builtBackends } from "@tinyllama/kernels";
import { huggingFaceTokenizerFiles } from "@tinyllama/tokenizer";
import { CheckpointSpaceError, EXIT_DISK_FULL } from "../checkpoint/store.js";
import { manifestFingerprint } from "../data/fingerprint.js";
import type { Setting } from "../distributed/agree.js";
import { detectDistEnv } from "../distributed/env.js";
import {
  LAUNCHER_FLAGS,
  launchLocalRanks,
  stripLauncherFlags,
  TRAINING_STARTED,
} from "../distributed/launcher.js";
import type { ShardingMode } from "../distributed/sharded.js";
import { type DistributedJob, joinDistributed } from "../distributed/world.js";
import { type LlamaConfig, MODEL_CONFIGS, modelConfig, parameterCount } from "../model/config.js";
import { type Backend, type DeviceName, loadKernels } from "../model/kernels.js";
import { formatTokens } from "../optim/schedule.js";
import {
  PAPER_SEQ_LEN,
  parseStage,
  parseVariant,
  STAGE_NAMES,
  type StageName,
  stageSpec,
  VARIANTS,
  type Variant,
} from "../stages/stages.js";
import { BatchSplitError, planBatch } from "../train/batch.js";
import {
  pendingCheckpointBase,
  type RunOptions,
  type RunResult,
  runStage,
  sourcesOf,
} from "../train/run.js";
import { NonFiniteLossError } from "../train/trainer.js";
import { type FlagSpec, formatHelp, type ParsedFlags, parseFlags, UsageError } from "./args.js";

export const CPU_DEFAULTS = {
  model: "tinyllama-4m",
  seqLen: 128,
  microBatch: 8,
  globalBatch: 8,
  // v1.0 -> 60k tokens (59 steps of 1024), basic 30k, continual 7k, cooldown 3k (one step).
  scale: 2e-8,
  maxLr: 2e-3,
  minLr: 2e-4,
  saveEvery: 50,
  evalEvery: 50,
  evalBatches: 4,
};

export const GPU_DEFAULTS = {
  model: "tinyllama-1.1b",
  seqLen: 2048,
  microBatch: 8,
  scale: 1,
  maxLr: 4e-4,
  minLr: 4e-5,
  saveEvery: 1000,
  evalEvery: 500,
  evalBatches: 16,
};

export const TRAIN_FLAGS: FlagSpec[] = [
  {
    name: "stage",
    type: "string",
    choices: STAGE_NAMES,
    help: "recipe stage to train",
    defaultText: "v1.0",
  },
  {
    name: "variant",
    type: "string",
    choices: VARIANTS,
    help: "continual/cooldown variant",
    defaultText: "base",
  },
  {
    name: "model",
    type: "string",
    choices: Object.keys(MODEL_CONFIGS),
    help: "model config",
    defaultText: `${GPU_DEFAULTS.model} on GPU, ${CPU_DEFAULTS.model} on CPU`,
  },
  {
    name: "device",
    type: "string",
    choices: ["auto", "cpu", "cuda"],
    help: "where to train",
    defaultText: "auto (cuda when a GPU is found)",
  },
  {
    name: "data",
    type: "string",
    metavar: "dir",
    help: "shard directory with one subdirectory per source",
    defaultText: "./data",
  },
  {
    name: "out",
    type: "string",
    metavar: "dir",
    help: "run directory; each stage writes <out>/<stage>/",
    defaultText: "runs/<model>",
  },
  {
    name: "from",
    type: "string",
    metavar: "dir",
    help: "start the stage from this checkpoint or Hugging Face Llama directory instead of the previous stage",
  },
  {
    name: "scale",
    type: "number",
    min: 0,
    help: "multiply every token budget (stages, warmup, domain ramp)",
    defaultText: `1 on GPU, ${CPU_DEFAULTS.scale} on CPU`,
  },
  {
    name: "seq-len",
    type: "int",
    min: 1,
    help: "tokens per training sequence (must divide 2048)",
    defaultText: `2048 on GPU, ${CPU_DEFAULTS.seqLen} on CPU`,
  },
  {
    name: "micro-batch",
    type: "int",
    min: 1,
    help: "sequences per forward/backward pass",
    defaultText: `${GPU_DEFAULTS.microBatch}`,
  },
  {
    name: "recompute",
    type: "string",
    choices: ["off", "layers"],
    help: "layers: keep only each layer's input and recompute its activations in backward, for micro-batches that do not fit otherwise (tinyllama-1.1b, micro-batch 16: activations 43.9 -> 8.3 GiB, about a fifth, for one more forward pass, 18% fewer tokens/s on an H200)",
    defaultText: "off",
  },
  {
    name: "global-batch",
    type: "int",
    min: 1,
    help: "sequences per optimizer step before the cooldown x4",
    defaultText: `the paper's tokens per step on GPU, ${CPU_DEFAULTS.globalBatch} on CPU`,
  },
  {
    name: "max-steps",
    type: "int",
    min: 1,
    help: "stop after this many optimizer steps in this invocation (checkpointed; rerun to continue)",
  },
  {
    name: "profile-step",
    type: "int",
    min: 1,
    help: "time every op of this step of this invocation (synchronized per op, so that step runs slower) and write profile.md in the run directory",
  },
  {
    name: "seed",
    type: "int",
    min: 0,
    help: "initialisation and data-order seed",
    defaultText: "3407",
  },
  {
    name: "lr-max",
    type: "number",
    min: 0,
    help: "peak learning rate",
    defaultText: `${GPU_DEFAULTS.maxLr} on GPU, ${CPU_DEFAULTS.maxLr} on CPU`,
  },
  {
    name: "lr-min",
    type: "number",
    min: 0,
    help: "final learning rate of the cosine",
    defaultText: `${GPU_DEFAULTS.minLr} on GPU, ${CPU_DEFAULTS.minLr} on CPU`,
  },
  {
    name: "lr-override",
    type: "boolean",
    help: "a resumed or chained stage keeps its checkpoint's --lr-max/--lr-min (flags left out take them, other values are refused); with this flag the given values replace them and the lr jumps there",
  },
  {
    name: "save-every",
    type: "int",
    min: 0,
    help: "checkpoint every n steps (0: only at the end)",
    defaultText: `${GPU_DEFAULTS.saveEvery} on GPU, ${CPU_DEFAULTS.saveEvery} on CPU`,
  },
  { name: "keep", type: "int", min: 1, help: "checkpoints kept per stage", defaultText: "3" },
  {
    name: "restart-stage",
    type: "boolean",
    help: "when every checkpoint of the stage is damaged, move them to checkpoints/damaged/ and train the stage again from its start (without it such a run stops, naming them)",
  },
  {
    name: "data-changed",
    type: "boolean",
    help: "resume a stage although the shards of a source changed since its checkpoint (without it such a resume stops, naming the sources): their block orders become other permutations, so blocks may repeat or be skipped",
  },
  {
    name: "eval-every",
    type: "int",
    min: 0,
    help: "validation loss every n steps (0: only at start and end)",
    defaultText: `${GPU_DEFAULTS.evalEvery} on GPU, ${CPU_DEFAULTS.evalEvery} on CPU`,
  },
  {
    name: "eval-batches",
    type: "int",
    min: 0,
    help: "micro-batches of held-out blocks per validation",
    defaultText: `${GPU_DEFAULTS.evalBatches} on GPU, ${CPU_DEFAULTS.evalBatches} on CPU`,
  },
  {
    name: "max-bad-steps",
    type: "int",
    min: 1,
    help: "stop after this many consecutive NaN/inf steps",
    defaultText: "5",
  },
  {
    name: "peak-tflops",
    type: "number",
    min: 0,
    help: "peak bf16 TFLOP/s of one device; MFU is the job's FLOP/s over this times the number of ranks",
    defaultText: "989 (H100 SXM) on CUDA",
  },
  {
    name: "nproc-per-node",
    type: "int",
    min: 1,
    help: "start this many ranks on this node (one per GPU) and train with sharded data parallelism",
  },
  {
    name: "nnodes",
    type: "int",
    min: 1,
    help: "nodes in the job (with --nproc-per-node)",
    defaultText: "1",
  },
  {
    name: "node-rank",
    type: "int",
    min: 0,
    help: "this node's index (with --nproc-per-node)",
    defaultText: "0",
  },
  {
    name: "master-addr",
    type: "string",
    metavar: "host",
    help: "rendezvous host: rank 0's node (with --nproc-per-node)",
    defaultText: "127.0.0.1",
  },
  {
    name: "master-port",
    type: "int",
    min: 1,
    help: "rendezvous port, 1-65535 (with --nproc-per-node)",
    defaultText: "a free port on one node, 29500 across nodes",
  },
  {
    name: "sharding",
    type: "string",
    choices: ["full", "hybrid"],
    help: "optimizer-state sharding across all ranks (v1.0) or within each node, replicated across nodes (v1.1)",
    defaultText: "full",
  },
  {
    name: "comm-overlap",
    type: "string",
    choices: ["on", "off"],
    help: "on: reduce each layer's gradients while backward runs (distributed runs; the same losses as off on 2 and 4 H200s, tokens/s within 0.2% of off there)",
    defaultText: "off",
  },
  { name: "help", type: "boolean", help: "show this help" },
];

export const TRAIN_USAGE =
  "usage: pnpm train [--stage v1.0|basic|continual|cooldown] [--variant base|math-code|chinese] [options]";

export const TRAIN_INTRO = [
  "Pretrains TinyLlama on the shards written by `pnpm data:prepare` (default ./data).",
  "Stages: v1.0 (3T tokens, SlimPajama:StarCoder 7:3), or the v1.1 recipe basic (1.5T, SlimPajama)",
  "-> continual (350B, --variant base|math-code|chinese) -> cooldown (150B, batch x4). One cosine",
  "LR schedule spans the recipe; a stage starts from the previous stage's last checkpoint in --out.",
  "Rerunning a command resumes its stage from the newest checkpoint. SIGINT/SIGTERM checkpoint, then exit.",
  "Several GPUs: --nproc-per-node N (several nodes: add --nnodes, --node-rank, --master-addr, or run one",
  "process per GPU under torchrun, srun or mpirun: RANK/WORLD_SIZE, SLURM_* and OMPI_* are read).",
  `Without a GPU it trains a small model on CPU with budgets scaled by ${CPU_DEFAULTS.scale}.`,
  "",
  "Also: pnpm train:plot <run dir> [--out file.svg]   (loss / lr / throughput SVG)",
].join("\n");

/** A CPU step for tinyllama-1.1b: why it is refused, in numbers. */
function explainBigModelOnCpu(name: string): string {
  const c = modelConfig(name);
  const n = parameterCount(c);
  const gb = (n * 16) / 1e9;
  return (
    `${name} on CPU is not sensible: ${(n / 1e9).toFixed(2)}B parameters need about ${gb.toFixed(0)} GB for fp32 weights, ` +
    "gradients and AdamW moments, and one 2M-token optimizer step is about 1.5e16 FLOP, which is days of CPU time per step. " +
    `Train it with --device cuda, or train a small model on CPU: --model ${CPU_DEFAULTS.model} (or ${Object.keys(
      MODEL_CONFIGS,
    )
      .filter((m) => m !== name && m !== CPU_DEFAULTS.model)
      .join(", ")})`
  );
}

/**
 * The Llama 2 tokenizer: its identity, as @tinyllama/data records it in manifests, and the
 * Hugging Face tokenizer files every checkpoint carries (AutoTokenizer.from_pretrained(dir)).
 */
async function llama2Tokenizer(
  model: LlamaConfig,
): Promise<{ identity: TokenizerIdentity; files: Record<string, string> }> {
  const tok = await bundledLlamaTokenizer();
  return {
    identity: tokenizerIdentity(tok),
    files: huggingFaceTokenizerFiles(tok.model, { modelMaxLength: model.maxSeqLen }),
  };
}

/** --seq-len, or the device's default within the model's context; checked. */
function seqLenFlag(f: ParsedFlags, model: LlamaConfig, deviceDefault: number): number {
  const seqLen = (f["seq-len"] as number | undefined) ?? Math.min(deviceDefault, model.maxSeqLen);
  if (seqLen > model.maxSeqLen) {
    throw new UsageError(
      `--seq-len ${seqLen} exceeds ${model.name}'s context of ${model.maxSeqLen}`,
    );
  }
  if (2048 % seqLen !== 0) {
    throw new UsageError(
      `--seq-len ${seqLen} must divide 2048 (each 2049-token block is cut into 2048/seq-len sequences)`,
    );
  }
  return seqLen;
}

/**
 * `--nproc-per-node`: what every rank would refuse at start, checked once before any rank is
 * spawned, so a bad port or a batch that cannot split is one usage error (exit 2) naming what
 * works, not N rank failures followed by advice to resume. The device is the one the ranks will
 * pick: `auto` means CUDA where the kernels were built with it (a rank that then finds no GPU
 * falls back to the CPU and checks its batch again).
 */
function checkBeforeLaunch(
  f: ParsedFlags,
  o: {
    stage: StageName;
    variant: Variant | null;
    device: DeviceName;
    modelName: string | undefined;
    worldSize: number;
  },
): void {
  const port = f["master-port"] as number | undefined;
  if (port !== undefined && port > 65535) {
    throw new UsageError(`--master-port must be a TCP port in 1-65535, got ${port}`);
  }
  const onCpu = o.device === "cpu" || (o.device === "auto" && !builtBackends().cuda);
  if (onCpu && o.modelName === "tinyllama-1.1b")
    throw new UsageError(explainBigModelOnCpu(o.modelName));
  const d = onCpu ? CPU_DEFAULTS : GPU_DEFAULTS;
  const model = modelConfig(o.modelName ?? d.model);
  const seqLen = seqLenFlag(f, model, d.seqLen);
  const spec = stageSpec(o.stage, o.variant); // batch sizes do not depend on --scale
  // Without --global-batch, a stage under way keeps its checkpoint's (see runStage).
  const globalBatch =
    (f["global-batch"] as number | undefined) ??
    pendingCheckpointBase(
      (f.out as string | undefined) ?? `runs/${model.name}`,
      spec,
      (f.from as string | undefined) ?? null,
    ) ??
    (onCpu ? CPU_DEFAULTS.globalBatch : null);
  try {
    planBatch({
      baseSeqs: globalBatch ?? Math.round((spec.batchSequences * PAPER_SEQ_LEN) / seqLen),
      multiplier: spec.batchMultiplier,
      microBatch: (f["micro-batch"] as number | undefined) ?? d.microBatch,
      worldSize: o.worldSize,
      seqLen,
    });
  } catch (e) {
    if (e instanceof BatchSplitError) throw new UsageError(`${e.message} (see --help)`);
    throw e;
  }
}

/**
 * Each source's train shards as its manifest lists them (the digest a checkpoint records,
 * data/fingerprint.ts): node-local copies of the same shards agree.
 */
function shardsFingerprint(dataDir: string, sources: readonly string[]): string {
  return sources
    .map((name) => {
      let h = "missing";
      try {
        const manifest = JSON.parse(readFileSync(join(dataDir, name, "manifest.json"), "utf8"));
        h = manifestFingerprint(manifest as ShardManifest).digest.slice(0, 12);
      } catch {}
      return `${name} ${h}`;
    })
    .join(", ");
}

/**
 * What every rank of a distributed run must agree on (checked at the rendezvous, agree.ts):
 * everything that changes the math, the data or the sequence of collectives. Per rank, and free
 * to differ: --micro-batch, --recompute (memory; the same sums), --profile-step. Rank 0's
 * --eval-every/--eval-batches, --keep, --restart-stage and --peak-tflops govern (only it
 * validates, writes and logs).
 */
function sharedSettings(o: RunOptions, sharding: ShardingMode): Setting[] {
  const spec = stageSpec(o.stage, o.variant, o.scale);
  const shards = shardsFingerprint(o.dataDir, sourcesOf(preset(spec.presetName)));
  return [
    { flag: "--stage/--variant", value: spec.dirName },
    { flag: "--model", value: o.model.name },
    { flag: "--device", value: o.backend.name },
    { flag: "--scale", value: String(o.scale) },
    { flag: "--seq-len", value: String(o.seqLen) },
    {
      flag: "--global-batch",
      value: `${o.globalBatchGiven ? "given" : "default"} ${o.globalBatch}`,
      shown: o.globalBatchGiven ? String(o.globalBatch) : "none (the default)",
    },
    { flag: "--seed", value: String(o.seed) },
    { flag: "--lr-max", value: String(o.maxLr) },
    { flag: "--lr-min", value: String(o.minLr) },
    { flag: "--lr-override", value: String(o.lrOverride) },
    { flag: "--data", value: shards, shown: `${o.dataDir} (manifests: ${shards})` },
    { flag: "--data-changed", value: String(o.dataChanged === true) },
    { flag: "--out", value: o.outDir },
    { flag: "--from", value: o.from === null ? "none" : resolve(o.from) },
    { flag: "--sharding", value: sharding },
    { flag: "--comm-overlap", value: o.overlapComm ? "on" : "off" },
    { flag: "--max-steps", value: String(o.maxSteps ?? "none") },
    { flag: "--save-every", value: String(o.saveEvery) },
    { flag: "--max-bad-steps", value: String(o.maxBadSteps) },
  ];
}

export interface TrainCommandDeps {
  log: (line: string) => void;
  /** What the launcher's ranks run (node arguments before the flags); default this process's script. */
  entry?: readonly string[];
  /** A distributed failure (peer died, timeout): default prints it naming this rank and exits 1. */
  onDistributedFailure?: (rank: number, e: Error) => void;
  /** Overrides backend loading (tests). */
  loadBackend?: (device: DeviceName) => Promise<Backend>;
  handleSignals?: boolean;
}

export async function trainCommand(
  argv: string[],
  deps: TrainCommandDeps,
): Promise<RunResult | null> {
  const f = parseFlags(argv, TRAIN_FLAGS);
  if (f.help) {
    deps.log(formatHelp(TRAIN_USAGE, TRAIN_INTRO, TRAIN_FLAGS));
    return null;
  }
  const stage = parseStage((f.stage as string | undefined) ?? "v1.0");
  const variantFlag = f.variant as string | undefined;
  if (variantFlag !== undefined && (stage === "v1.0" || stage === "basic")) {
    throw new UsageError(
      `--variant applies to the continual and cooldown stages, not to --stage ${stage}`,
    );
  }
  const variant =
    stage === "continual" || stage === "cooldown" ? parseVariant(variantFlag ?? "base") : null;
  const device = ((f.device as string | undefined) ?? "auto") as DeviceName;
  const modelName = f.model as string | undefined;
  if (device === "cpu" && modelName === "tinyllama-1.1b")
    throw new UsageError(explainBigModelOnCpu(modelName));
  if (f["lr-override"] && f["lr-max"] === undefined && f["lr-min"] === undefined) {
    throw new UsageError(
      "--lr-override goes with the --lr-max and/or --lr-min that replace the checkpoint's",
    );
  }

  const nproc = f["nproc-per-node"] as number | undefined;
  if (nproc !== undefined && !process.env.TINYLLAMA_LAUNCHED) {
    if (detectDistEnv()) {
      throw new UsageError(
        "--nproc-per-node starts the ranks itself: do not combine it with a launcher that already did (RANK/WORLD_SIZE, srun, mpirun)",
      );
    }
    const nnodes = (f.nnodes as number | undefined) ?? 1;
    checkBeforeLaunch(f, { stage, variant, device, modelName, worldSize: nproc * nnodes });
    const r = await launchLocalRanks({
      nprocPerNode: nproc,
      nnodes,
      nodeRank: (f["node-rank"] as number | undefined) ?? 0,
      masterAddr: (f["master-addr"] as string | undefined) ?? "127.0.0.1",
      masterPort: (f["master-port"] as number | undefined) ?? null,
      command: [
        ...(deps.entry ?? [...process.execArgv, process.argv[1]!]),
        ...stripLauncherFlags(argv),
      ],
      log: deps.log,
    });
    if (r.failed) {
      const what = `rank ${r.failed.rank} ${r.failed.how}`;
      if (r.diskFull) {
        // Rerunning as is would fill the disk again at the same checkpoint.
        throw new CheckpointSpaceError(
          `${what}: the disk is full (exit code ${EXIT_DISK_FULL}; the rank's message above says what did not fit: a checkpoint, ` +
            "with the room one takes, or the metrics file); all ranks stopped. Rerunning as is fails the same way: first free " +
            "space on the filesystem of --out (--keep + 1 checkpoints must fit at once, as older ones are deleted only after a " +
            "new one is written), then rerun the same command to resume from the last checkpoint",
          "ENOSPC",
        );
      }
      if (r.notFinite) {
        // A resume is exact: rerunning as is trains the same steps into the same NaN/inf.
        throw new NonFiniteLossError(
          `${what}: the loss or gradient norm was not finite for --max-bad-steps steps in a row (rank 0's message ` +
            "above names them); all ranks stopped. Rerunning as is repeats those steps from the same state: lower the learning " +
            "rate (--lr-max/--lr-min, with --lr-override when the stage continues a checkpoint) or check the data, " +
            "then rerun to resume from the last checkpoint",
        );
      }
      // A rank that failed before its first step (bad data, a checkpoint that does not fit, a
      // rendezvous that failed) left nothing to resume: rerunning would fail the same way.
      if (r.trainingStarted) {
        throw new Error(
          `${what}; all ranks stopped. Rerun the same command to resume from the last checkpoint`,
        );
      }
      if (r.failed.how === "exited with code 2") {
        throw new UsageError(`${what} (a usage error, above) before training started (see --help)`);
      }
      throw new Error(`${what} before training started (its error is above); all ranks stopped`);
    }
    return null;
  }
  for (const flag of LAUNCHER_FLAGS) {
    if (flag !== "nproc-per-node" && f[flag] !== undefined && !process.env.TINYLLAMA_LAUNCHED) {
      throw new UsageError(`--${flag} goes with --nproc-per-node`);
    }
  }
  const distEnv = detectDistEnv();
  const sharding = ((f.sharding as string | undefined) ?? "full") as ShardingMode;

  let backend: Backend;
  // One GPU per local rank, unless the launcher or the user chose.
  if (distEnv && process.env.TINYLLAMA_CUDA_DEVICE === undefined) {
    // A launcher that already gave each task one GPU (CUDA_VISIBLE_DEVICES=<one id>) leaves device 0.
    const visible = (process.env.CUDA_VISIBLE_DEVICES ?? "").split(",").filter((d) => d !== "");
    process.env.TINYLLAMA_CUDA_DEVICE = visible.length === 1 ? "0" : String(distEnv.localRank);
  }
  try {
    backend = await (deps.loadBackend ?? loadKernels)(device);
  } catch (e) {
    if (device !== "cuda") throw e;
    throw new Error(
      `--device cuda: no usable GPU backend: ${(e as Error).message}. ` +
        "Without a GPU, leave --device out (auto) or pass --device cpu to train a small model on CPU",
    );
  }
  const onCpu = backend.name === "cpu";
  if (onCpu && modelName === "tinyllama-1.1b")
    throw new UsageError(explainBigModelOnCpu(modelName));
  const d = onCpu ? CPU_DEFAULTS : GPU_DEFAULTS;
  const model = modelConfig(modelName ?? d.model);
  if (onCpu && device === "auto") {
    deps.log(
      modelName
        ? `no GPU found: training ${model.name} on CPU`
        : `no GPU found: training a small model (${model.name}, ${(parameterCount(model) / 1e6).toFixed(1)}M parameters) on CPU ` +
            `on the shards in ${(f.data as string | undefined) ?? "./data"}, token budgets scaled by ${CPU_DEFAULTS.scale}`,
    );
  }
  const seqLen = seqLenFlag(f, model, d.seqLen);
  if (onCpu && f["peak-tflops"] !== undefined) {
    deps.log("note: --peak-tflops is ignored on CPU (MFU is computed on CUDA only)");
  }
  const scale = (f.scale as number | undefined) ?? d.scale;
  if (!(scale > 0)) throw new UsageError(`--scale must be positive, got ${scale}`);
  // A 32,000-piece model is trained on Llama 2 tokens (the shards' manifests are checked).
  const llama2 = model.vocabSize === 32000 ? await llama2Tokenizer(model) : null;
  const opts: RunOptions = {
    stage,
    variant,
    scale,
    model,
    backend,
    dataDir: resolve((f.data as string | undefined) ?? "data"),
    tokenizer: llama2?.identity ?? null,
    tokenizerFiles: llama2?.files ?? null,
    outDir: resolve((f.out as string | undefined) ?? `runs/${model.name}`),
    from: (f.from as string | undefined) ?? null,
    seqLen,
    microBatch: (f["micro-batch"] as number | undefined) ?? d.microBatch,
    globalBatch:
      (f["global-batch"] as number | undefined) ?? (onCpu ? CPU_DEFAULTS.globalBatch : null),
    globalBatchGiven: f["global-batch"] !== undefined,
    maxSteps: (f["max-steps"] as number | undefined) ?? null,
    seed: (f.seed as number | undefined) ?? 3407,
    maxLr: (f["lr-max"] as number | undefined) ?? d.maxLr,
    minLr: (f["lr-min"] as number | undefined) ?? d.minLr,
    lrGiven: { maxLr: f["lr-max"] !== undefined, minLr: f["lr-min"] !== undefined },
    lrOverride: f["lr-override"] === true,
    saveEvery: (f["save-every"] as number | undefined) ?? d.saveEvery,
    keep: (f.keep as number | undefined) ?? 3,
    evalEvery: (f["eval-every"] as number | undefined) ?? d.evalEvery,
    evalBatches: (f["eval-batches"] as number | undefined) ?? d.evalBatches,
    maxBadSteps: (f["max-bad-steps"] as number | undefined) ?? 5,
    logSeconds: onCpu ? 5 : 10,
    peakFlops: onCpu ? null : ((f["peak-tflops"] as number | undefined) ?? 989) * 1e12,
    profileStep: (f["profile-step"] as number | undefined) ?? null,
    overlapComm: f["comm-overlap"] === "on",
    recompute: f.recompute === "layers",
    handleSignals: deps.handleSignals ?? true,
    restartStage: f["restart-stage"] === true,
    dataChanged: f["data-changed"] === true,
    log: deps.log,
  };
  // Under --nproc-per-node: tell the launcher this rank got past every check, so that a later
  // failure is one a rerun resumes from (see launchLocalRanks' trainingStarted).
  if (process.env.TINYLLAMA_LAUNCHED && process.send) {
    opts.onTrainingStart = () => {
      process.send?.(TRAINING_STARTED, undefined, {}, () => {});
    };
    // The launcher gone (killed with -9, say): its IPC channel closes. Exit at once, writing
    // nothing more (no metrics, no checkpoint; the pipes to the launcher are gone too), so no
    // orphaned rank trains beside a rerun of the command. The ppid check is the backstop.
    const launcher = process.ppid;
    const orphaned = () => process.exit(1);
    process.on("disconnect", orphaned);
    opts.stopIfOrphaned = () => {
      if (process.ppid !== launcher || !process.connected) orphaned();
    };
  }
  let job: DistributedJob | null = null;
  if (distEnv) {
    const rank = distEnv.rank;
    if (rank !== 0) opts.log = () => {};
    job = await joinDistributed(backend, distEnv, sharding, {
      settings: sharedSettings(opts, sharding),
      sharedDir: opts.outDir,
      log: deps.log,
    });
    const onFailure =
      deps.onDistributedFailure ??
      ((r: number, e: Error) => {
        console.error(`train: rank ${r}: ${e.message}`);
        process.exit(1);
      });
    job.onFailure((e) => onFailure(rank, e));
    opts.distributed = job;
  } else if (f.sharding !== undefined || f["comm-overlap"] !== undefined) {
    deps.log(
      `note: ${f.sharding !== undefined ? "--sharding" : "--comm-overlap"} applies to distributed runs (--nproc-per-node, torchrun, srun, mpirun); training on one process`,
    );
  }
  let r: RunResult;
  try {
    r = await runStage(opts);
  } catch (e) {
    job?.close();
    throw e;
  }
  await job?.shutdown();
  if (distEnv && distEnv.rank !== 0) return r;
  deps.log("");
  deps.log(`stage directory: ${r.stageDir}`);
  deps.log(`checkpoint:      ${r.checkpoint ?? "none"}`);
  deps.log(`metrics:         ${r.metrics}`);
  deps.log(`plot:            ${r.plot ?? "not written"}`);
  if (r.firstLoss !== null && r.lastLoss !== null) {
    deps.log(
      `loss ${r.firstLoss.toFixed(4)} -> ${r.lastLoss.toFixed(4)} over ${r.steps} steps` +
        (r.secondsPerStep ? ` (${r.secondsPerStep.toFixed(3)} s/step)` : "") +
        `, ${formatTokens(r.stageTokens)} of ${formatTokens(r.stageBudget)} stage tokens`,
    );
  }
  return r;
}
