/**
 * Runs one stage of a recipe end to end: resolve where it starts (its own newest checkpoint,
 * --from, the previous stage's newest checkpoint, or a fresh reference init), check the data
 * and the schedule before the first step, train with periodic checkpoints and validation,
 * stop cleanly on SIGINT/SIGTERM (checkpoint, then return), and leave metrics and a plot.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { TokenizerIdentity } from "@tinyllama/data";
import { MixtureSampler, preset, scaleSchedule } from "@tinyllama/data/mixture";
import { resolveWeightsDir } from "../checkpoint/hf.js";
import {
  type CheckpointRef,
  checkpointName,
  checkpointsDir,
  DAMAGED_DIR,
  latestCheckpoint,
  listCheckpoints,
  recoverCheckpoints,
} from "../checkpoint/store.js";
import {
  assertSameModel,
  loadOptimizerInto,
  loadWeightsInto,
  readTrainerState,
  saveTrainingCheckpoint,
  TRAINER_STATE_FILE,
  TRAINER_STATE_FORMAT,
  type TrainerState,
  verifyCheckpoint,
} from "../checkpoint/trainer-checkpoint.js";
import { changedSources, type SourceFingerprint, sourceFingerprints } from "../data/fingerprint.js";
import { closeSources, openSources } from "../data/sources.js";
import { TokenStream } from "../data/stream.js";
import { validationBatches } from "../data/validation.js";
import { ShardedTrainer } from "../distributed/sharded.js";
import type { DistributedJob } from "../distributed/world.js";
import {
  formatDuration,
  MetricsWriter,
  progressLine,
  truncateMetrics,
} from "../metrics/metrics.js";
import { plotRun } from "../metrics/plot.js";
import {
  type LlamaConfig,
  modelFlopsUtilization,
  parameterCount,
  trainFlopsPerToken,
} from "../model/config.js";
import { type Backend, formatProfile, type OpTiming, profiled } from "../model/kernels.js";
import { LlamaModel } from "../model/llama.js";
import { TINYLLAMA_ADAMW } from "../optim/adamw.js";
import {
  type CosineSchedule,
  describeSchedule,
  formatTokens,
  learningRate,
  validateSchedule,
} from "../optim/schedule.js";
import {
  PAPER_SEQ_LEN,
  type StageName,
  type StageSpec,
  stageSpec,
  type Variant,
} from "../stages/stages.js";
import { planBatch } from "./batch.js";
import { assertFitsDevice, explainOutOfMemory, trainingBytes } from "./errors.js";
import { NonFiniteLossError, type StepResult, Trainer } from "./trainer.js";

export interface RunOptions {
  stage: StageName;
  variant: Variant | null;
  scale: number;
  model: LlamaConfig;
  backend: Backend;
  dataDir: string;
  /** Shards must come from this tokenizer (null: only vocabulary size and cross-source checks). */
  tokenizer: TokenizerIdentity | null;
  /**
   * Hugging Face tokenizer files (name -> contents) written into every checkpoint, so that
   * transformers' AutoTokenizer loads the checkpoint directory; null or absent: none.
   */
  tokenizerFiles?: Record<string, string> | null;
  outDir: string;
  from: string | null;
  seqLen: number;
  microBatch: number;
  /** Base global batch in sequences of seqLen (before the cooldown multiplier); null: the paper's. */
  globalBatch: number | null;
  /**
   * Whether `globalBatch` was chosen (a flag, not a default). When not, a stage that continues
   * its own checkpoint keeps the checkpoint's global batch. Absent: chosen.
   */
  globalBatchGiven?: boolean;
  maxSteps: number | null;
  seed: number;
  maxLr: number;
  minLr: number;
  /**
   * Which of maxLr/minLr the user chose (a flag, not a default). A stage that continues a
   * checkpoint keeps the checkpoint's values for the others and refuses chosen values that
   * differ unless `lrOverride` (see lrSchedule). Absent: neither was chosen.
   */
  lrGiven?: { maxLr: boolean; minLr: boolean };
  /** Use maxLr/minLr even where they differ from the checkpoint's schedule (the lr jumps). */
  lrOverride?: boolean;
  saveEvery: number;
  keep: number;
  evalEvery: number;
  evalBatches: number;
  maxBadSteps: number;
  /** Progress line at most every this many seconds (and at the first and last step). */
  logSeconds: number;
  /** Peak FLOP/s of one device for MFU (the job has worldSize of them); null when unknown (CPU). */
  peakFlops: number | null;
  /** Distributed: reduce gradients while backward runs (ShardedOptions.overlapComm). */
  overlapComm?: boolean;
  /** Keep only each layer's input; recompute its activations in backward (less memory, more compute). */
  recompute?: boolean;
  /** Time every op of this step of this invocation (1-based; null: no profiling). */
  profileStep?: number | null;
  /** Called once everything is checked and loaded, just before the first step (the launcher's cue). */
  onTrainingStart?: () => void;
  /** Whether to handle SIGINT/SIGTERM (checkpoint, then stop). */
  handleSignals: boolean;
  /**
   * When every checkpoint of the stage is damaged: move them to checkpoints/damaged/ and train
   * the stage from its start (without it, the run stops naming them and what is wrong).
   */
  restartStage?: boolean;
  /**
   * Continue a stage although the shards of a source changed since its checkpoint (without it,
   * such a resume is refused, naming the sources): the changed sources' block orders become
   * other permutations, so blocks may be read again or skipped.
   */
  dataChanged?: boolean;
  /**
   * Called before each step, each metrics record and each checkpoint: a rank whose launcher is
   * gone exits here without writing anything more (see train-command.ts).
   */
  stopIfOrphaned?: () => void;
  log: (line: string) => void;
  /** Sharded data parallelism over these ranks (null: this process trains alone). */
  distributed?: DistributedJob | null;
}

export interface RunResult {
  stageDir: string;
  checkpoint: string | null;
  metrics: string;
  plot: string | null;
  steps: number;
  firstLoss: number | null;
  lastLoss: number | null;
  stageTokens: number;
  stageBudget: number;
  complete: boolean;
  interrupted: string | null;
  skippedSteps: number;
  secondsPerStep: number | null;
}

/** The sources a mixture schedule draws from, sorted. */
export function sourcesOf(schedule: ReturnType<typeof preset>): string[] {
  const names = new Set<string>();
  for (const p of schedule.points) for (const n of Object.keys(p.weights)) names.add(n);
  return [...names].sort();
}

export async function runStage(o: RunOptions): Promise<RunResult> {
  const log = o.log;
  const spec = stageSpec(o.stage, o.variant, o.scale);
  const runDir = resolve(o.outDir);
  const stageDir = join(runDir, spec.dirName);
  const cfg = o.model;
  const recompute = o.recompute ?? false;

  const requestedBase =
    o.globalBatch ?? Math.round((spec.batchSequences * PAPER_SEQ_LEN) / o.seqLen);
  const dist = o.distributed ?? null;
  const worldSize = dist?.world.size ?? 1;
  const isRoot = !dist || dist.world.rank === 0;
  const stageBudget = spec.endTokens - spec.startTokens;

  // Where does this stage start?
  let resumeFrom: string | null = null;
  let initFrom: { dir: string; state: TrainerState | null } | null = null;
  // The newest usable checkpoint of this stage, chosen by the process that writes checkpoints
  // (other ranks take its choice: one verification, no race with its repairs).
  let own: CheckpointRef | null = isRoot ? newestUsableCheckpoint(stageDir, o, log) : null;
  if (dist) {
    const [chosen] = await dist.world.allReduceHost([own ? own.step + 1 : 0], "max");
    own = chosen
      ? { step: chosen - 1, path: join(checkpointsDir(stageDir), checkpointName(chosen - 1)) }
      : null;
  }
  if (own) {
    resumeFrom = own.path;
    if (o.from)
      log(`note: ${stageDir} already has checkpoints; resuming from ${own.path}, ignoring --from`);
  } else if (o.from) {
    // A run or stage directory means its newest checkpoint (as for the weights, which
    // loadWeightsInto resolves the same way): its trainer state carries the optimizer, the
    // counters and the data position, which reading the directory as given would drop.
    const given = resolve(o.from);
    const dir = resolveWeightsDir(given);
    if (dir !== given) log(`--from ${o.from}: its newest checkpoint is ${dir}`);
    const statePath = join(dir, TRAINER_STATE_FILE);
    initFrom = { dir, state: existsSync(statePath) ? readTrainerState(dir) : null };
  } else if (spec.previousDir) {
    const prevDir = join(runDir, spec.previousDir);
    if (isRoot) for (const line of recoverCheckpoints(prevDir)) log(`note: ${line}`);
    if (dist) await dist.world.barrier();
    const prev = latestCheckpoint(prevDir);
    if (!prev) {
      const previousStage = spec.previousDir.split("-")[0];
      const variant = spec.variant && spec.variant !== "base" ? ` --variant ${spec.variant}` : "";
      throw new Error(
        `stage ${spec.dirName} starts from the last checkpoint of ${spec.previousDir}, but ${prevDir} has none: ` +
          `run --stage ${previousStage}${variant} first (same --out), or pass --from <checkpoint>`,
      );
    }
    initFrom = { dir: prev.path, state: readTrainerState(prev.path) };
    if (!initFrom.state?.complete) {
      log(
        `warning: ${prev.path} is not the end of stage ${spec.previousDir} (it stopped early); continuing from it`,
      );
    }
  }

  const state: TrainerState | null = resumeFrom ? readTrainerState(resumeFrom) : null;
  if (state) {
    assertSameModel(resumeFrom!, state.model, cfg);
    if (state.complete) {
      log(
        `stage ${spec.dirName} is already complete (${resumeFrom}); nothing to do ` +
          "(use another --out, or delete the stage directory, to train it again)",
      );
      let plot: string | null = null;
      try {
        plot = plotRun(runDir);
      } catch (e) {
        log(`plot not written: ${(e as Error).message}`);
      }
      return {
        stageDir,
        checkpoint: resumeFrom,
        metrics: join(stageDir, "metrics.jsonl"),
        plot,
        steps: 0,
        firstLoss: null,
        lastLoss: null,
        stageTokens: state.stageTokens,
        stageBudget: state.stageBudget,
        complete: true,
        interrupted: null,
        skippedSteps: state.skippedSteps,
        secondsPerStep: null,
      };
    }
  }
  // --from a checkpoint of this same stage (branching it into a new --out): the stage goes on
  // from there as a resume would (budget, data position, counters), instead of restarting its
  // token budget and re-reading its blocks.
  // (checked here, before anything is loaded, for every use of initFrom below)
  if (initFrom?.state) assertSameModel(initFrom.dir, initFrom.state.model, cfg);
  const branched = initFrom?.state?.stage.dirName === spec.dirName ? initFrom.state : null;
  if (branched?.complete) {
    const next =
      spec.stage === "basic"
        ? "--stage continual"
        : spec.stage === "continual"
          ? `--stage cooldown --variant ${spec.variant}`
          : null;
    throw new Error(
      `--from ${initFrom!.dir} is the end of stage ${spec.dirName}: nothing of it is left to train` +
        (next ? `; to start the next stage from it, pass ${next}` : ""),
    );
  }
  /** The checkpoint this stage continues mid-stage: its own newest, or a branch's --from. */
  const cont: { dir: string; state: TrainerState } | null = state
    ? { dir: resumeFrom!, state }
    : branched
      ? { dir: initFrom!.dir, state: branched }
      : null;
  if (cont && worldSize > 1 && cont.state.stream.window > 0) {
    throw new Error(midBlockOnRanks(cont.dir, cont.state, worldSize));
  }

  // Batch arithmetic, checked before anything is loaded. A stage that goes on from its own
  // checkpoint keeps that checkpoint's global batch unless --global-batch is given (a rerun
  // on other hardware must not change it silently); a given one that differs is noted.
  const baseSeqs = cont ? continuedBase(o, spec, cont, requestedBase, log) : requestedBase;
  const { globalSeqs, accumSteps } = planBatch({
    baseSeqs,
    multiplier: spec.batchMultiplier,
    microBatch: o.microBatch,
    worldSize,
    seqLen: o.seqLen,
  });
  const batchTokens = globalSeqs * o.seqLen;

  const schedule = lrSchedule(o, spec, state ? { dir: resumeFrom!, state } : initFrom, log);
  validateSchedule(schedule);

  const mixtureSchedule = scaleSchedule(preset(spec.presetName), o.scale);
  const sourceNames = sourcesOf(mixtureSchedule);
  log(
    `stage ${spec.dirName}: ${formatTokens(stageBudget)} tokens (scale ${o.scale}), mixture ${spec.presetName} ` +
      `(${sourceNames.join(", ")}), model ${cfg.name} (${(parameterCount(cfg) / 1e6).toFixed(2)}M parameters) on ${o.backend.name}`,
  );
  log(
    `batch: ${globalSeqs} sequences x ${o.seqLen} tokens = ${formatTokens(batchTokens)} tokens per step ` +
      `(micro-batch ${o.microBatch} x ${accumSteps} accumulation steps${recompute ? ", layer activations recomputed in backward" : ""}), about ${Math.ceil(stageBudget / batchTokens)} steps`,
  );
  if (stageBudget < batchTokens) {
    log(
      `note: stage ${spec.dirName} at --scale ${o.scale} is ${formatTokens(stageBudget)} tokens, less than one ` +
        `global batch of ${formatTokens(batchTokens)}: it trains one step`,
    );
  }
  log(
    describeSchedule(
      schedule,
      // In token order: a later stage starts after the end of warmup.
      [
        { label: `${spec.dirName} start`, tokens: spec.startTokens },
        { label: "end of warmup", tokens: spec.warmupTokens },
        { label: `${spec.dirName} end`, tokens: spec.endTokens },
        { label: "recipe end", tokens: spec.decayTokens },
      ].sort((a, b) => a.tokens - b.tokens),
    ),
  );

  const sources = await openSources(o.dataDir, sourceNames, cfg.vocabSize, o.tokenizer);
  const dataPrints = sourceFingerprints(sources);
  if (isRoot && spec.variant === "math-code") {
    const note = mathCodeStarcoderNote(sources.get("starcoder")?.train.manifest.config);
    if (note) log(note);
  }
  let model: LlamaModel | null = null;
  let trainer: Trainer | null = null;
  let sharded: ShardedTrainer | null = null;
  // --profile-step: the model runs on a forwarding backend that can time each op of one step.
  const profiler = o.profileStep ? profiled(o.backend) : null;
  const writeProfile = (rows: OpTiming[], seconds: number, atStep: number) => {
    const md =
      `# Op profile: ${cfg.name}, step ${atStep}, micro-batch ${o.microBatch} x ${o.seqLen}, ` +
      `${accumSteps} accumulation step(s), ${o.backend.device.name}\n\n` +
      `Each op synchronized before and after (this step ran slower than the others: ${(seconds * 1000).toFixed(1)} ms).\n\n` +
      `${formatProfile(rows, seconds * 1000)}\n`;
    writeFileSync(join(stageDir, "profile.md"), md);
    writeFileSync(join(stageDir, "profile.json"), JSON.stringify({ step: atStep, seconds, rows }));
    log(`profile of step ${atStep} written to ${join(stageDir, "profile.md")}`);
  };
  try {
    checkShardsUnchanged(
      o,
      spec.dirName,
      cont,
      initFrom?.state ?? null,
      dataPrints,
      sourceNames,
      log,
    );
    assertFitsDevice(cfg, o.microBatch, o.seqLen, o.backend.device, {
      recompute,
      // Each rank keeps 1/S of the master weights and moments (ShardedTrainer).
      shardGroupSize: dist ? dist.shard.size : null,
    });
    try {
      // Sharded runs: the parameter arena padded to the shard group doubles as the all-gather
      // buffer where the layouts allow (ShardedTrainer.gathersIntoParams).
      model = new LlamaModel(
        profiler?.backend ?? o.backend,
        cfg,
        dist ? { shardGroupSize: dist.shard.size } : {},
      );
      trainer = new Trainer(
        model,
        { microBatch: o.microBatch, seqLen: o.seqLen, accumSteps, recompute },
        TINYLLAMA_ADAMW,
        {
          maxBadSteps: o.maxBadSteps,
          ...(dist ? { dataParallel: { size: worldSize, shardGroupSize: dist.shard.size } } : {}),
        },
      );
      if (dist)
        sharded = new ShardedTrainer(trainer, dist, { overlapComm: o.overlapComm ?? false });
    } catch (e) {
      throw explainOutOfMemory(e, {
        device: o.backend.name,
        microBatch: o.microBatch,
        seqLen: o.seqLen,
      });
    }
    let step = 0;
    let tokensSeen = spec.startTokens;
    let stageTokens = 0;
    let skippedSteps = 0;
    let elapsed = 0;
    let seed = o.seed;
    let stream: TokenStream;
    const target = sharded ?? trainer;
    const rankOpts = dist ? { rank: dist.world.rank, worldSize } : {};
    if (cont) {
      const { dir, state: st } = cont; // its model was checked against cfg above
      loadWeightsInto(target, dir);
      loadOptimizerInto(target, dir);
      ({ step, tokensSeen, stageTokens, skippedSteps } = st);
      trainer.adamStep = st.adamStep;
      trainer.consecutiveBad = st.consecutiveBad;
      elapsed = st.elapsedSeconds;
      if (st.seed !== o.seed) {
        log(
          `note: this stage was started with --seed ${st.seed}; keeping it (the data order depends on it)`,
        );
      }
      if (st.stage.scale !== o.scale) {
        log(
          `warning: this stage was started at --scale ${st.stage.scale}; continuing at ${o.scale} changes its token budget`,
        );
      }
      seed = st.seed;
      stream = new TokenStream(
        sources,
        {
          schedule: mixtureSchedule,
          seed,
          seqLen: o.seqLen,
          vocabSize: cfg.vocabSize,
          ...rankOpts,
        },
        st.stream,
      );
      log(
        state
          ? `resuming ${spec.dirName} from ${dir} at step ${step} (${formatTokens(stageTokens)} stage tokens)`
          : `continuing ${spec.dirName} from ${dir} (--from, a checkpoint of this stage) at step ${step} ` +
              `(${formatTokens(stageTokens)} stage tokens; optimizer state, counters and data position carried over)`,
      );
    } else {
      let offsets: Record<string, number> = {};
      if (initFrom) {
        const used = loadWeightsInto(target, initFrom.dir);
        if (initFrom.state) {
          loadOptimizerInto(target, initFrom.dir);
          trainer.adamStep = initFrom.state.adamStep;
          step = initFrom.state.step;
          tokensSeen = initFrom.state.tokensSeen;
          offsets = offsetsAfterStage(initFrom.state);
          if (initFrom.state.seed !== o.seed) {
            log(
              `note: keeping the previous stage's --seed ${initFrom.state.seed} so each source's block order continues`,
            );
            seed = initFrom.state.seed;
          }
          log(
            `starting ${spec.dirName} from ${used} (step ${step}, ${formatTokens(tokensSeen)} tokens seen; optimizer state carried over)`,
          );
        } else {
          log(
            `starting ${spec.dirName} from Hugging Face weights in ${used} (fresh optimizer; schedule at ${formatTokens(tokensSeen)} tokens)`,
          );
        }
      } else {
        if (sharded) sharded.initWeights(o.seed);
        else trainer.initWeights(o.seed);
        log(`starting ${spec.dirName} from the reference initialisation (seed ${o.seed})`);
      }
      stream = new TokenStream(sources, {
        schedule: mixtureSchedule,
        seed,
        seqLen: o.seqLen,
        sourceOffsets: offsets,
        vocabSize: cfg.vocabSize,
        ...rankOpts,
      });
    }
    // A stage scaled down to a few blocks (the bundled sample) can draw none of a minority
    // source: the low-discrepancy sampler places a source with 0.4 expected blocks later than
    // that. Said up front, so that "math-code" trained on no math is not a surprise.
    const stageBlocks = stageBudget / PAPER_SEQ_LEN;
    const scarce = Object.entries(stream.underOneBlock(stageBlocks));
    if (scarce.length > 0 && !cont) {
      log(
        `note: this stage reads about ${stageBlocks.toPrecision(2)} blocks of ${PAPER_SEQ_LEN} tokens; the schedule gives ` +
          `${scarce.map(([n, e]) => `${n} ${e.toFixed(1)}`).join(", ")} of them, so ` +
          `${scarce.length === 1 ? "that source" : "those sources"} may get none (a larger --scale gives every source its share)`,
      );
    }
    // Steps of the run before this stage's first (for "N steps in this stage").
    const stageStartStep = cont
      ? (cont.state.stageStartStep ??
        cont.state.step -
          Math.round(
            cont.state.stageTokens / (cont.state.globalBatchSequences * cont.state.seqLen),
          ))
      : step;
    const metricsPath = join(stageDir, "metrics.jsonl");
    if (isRoot) {
      // Records past the starting checkpoint belong to a continuation that was lost. A stage
      // without a checkpoint of its own (a first start, or a crash before its first checkpoint)
      // starts the file anew: appending would repeat the steps the crashed attempt logged.
      if (resumeFrom) truncateMetrics(metricsPath, step);
      else rmSync(metricsPath, { force: true });
    }
    if (dist) {
      const unsharded = trainingBytes(
        cfg,
        o.microBatch,
        o.seqLen,
        o.backend.name === "cpu",
        recompute,
      );
      const gib = (b: number) => (b / 2 ** 30).toFixed(2);
      // Every rank must start from the same step (checkpoints on a filesystem all nodes see).
      const [hi, negLo] = await dist.world.allReduceHost([step, -step], "max");
      if (hi !== step || -negLo! !== step) {
        throw new Error(
          `ranks start from different steps (this rank ${dist.world.rank}: step ${step}, others up to ${hi}): ` +
            `--out must be on a filesystem every node sees, with the same path`,
        );
      }
      log(
        `distributed: ${worldSize} ranks over ${dist.transport} (${dist.nodes} node(s) x ${dist.ranksPerNode}), ` +
          `${dist.mode} sharding: optimizer state in shards of ${dist.shard.size} rank(s)` +
          (dist.replica ? `, replicated on ${dist.replica.size} nodes` : "") +
          (sharded!.overlapComm ? "; gradients reduced during backward" : "") +
          `; each rank trains ${globalSeqs / worldSize} of the ${globalSeqs} sequences per step; ` +
          `${gib(sharded!.memoryBytes())} GiB planned per rank (one process: ${gib(unsharded.state + unsharded.activations)} GiB)`,
      );
    }

    const metrics = isRoot ? new MetricsWriter(metricsPath) : null;
    const validation = validationBatches(
      sources,
      cfg.vocabSize,
      o.seqLen,
      o.microBatch,
      o.evalBatches,
    );
    if (!validation) {
      log(
        o.evalBatches <= 0
          ? "validation off (--eval-batches 0)"
          : "no validation split in these shards: validation loss is not computed",
      );
    }
    const flopsPerToken = trainFlopsPerToken(cfg, o.seqLen);
    /** MFU of a whole-job token rate (null without a known peak: CPU). */
    const mfuOf = (rate: number) =>
      o.peakFlops ? modelFlopsUtilization(rate, flopsPerToken, o.peakFlops, worldSize) : null;

    const snapshot = (complete: boolean): TrainerState => ({
      format: TRAINER_STATE_FORMAT,
      model: cfg,
      stage: { stage: spec.stage, variant: spec.variant, dirName: spec.dirName, scale: o.scale },
      step,
      stageStartStep,
      tokensSeen,
      stageTokens,
      stageBudget,
      adamStep: trainer!.adamStep,
      consecutiveBad: trainer!.consecutiveBad,
      skippedSteps,
      stream: stream.state(),
      data: dataPrints,
      seed,
      seqLen: o.seqLen,
      microBatch: o.microBatch,
      globalBatchSequences: globalSeqs,
      schedule,
      adamw: { ...TINYLLAMA_ADAMW },
      elapsedSeconds: elapsed,
      complete,
      createdAt: new Date().toISOString(),
    });
    /** The newest checkpoint of this stage on disk (null: none written or resumed from). */
    let lastSaved: { step: number; complete: boolean } | null = state
      ? { step: state.step, complete: state.complete }
      : null;
    const extra = o.tokenizerFiles ?? {};
    const save = async (complete: boolean): Promise<string> => {
      o.stopIfOrphaned?.();
      const t0 = performance.now();
      let path = "(written by rank 0)";
      if (sharded && dist) {
        const source = await sharded.gatherState();
        if (source)
          path = saveTrainingCheckpoint(stageDir, source, snapshot(complete), o.keep, extra).path;
        await dist.world.barrier();
      } else {
        path = saveTrainingCheckpoint(stageDir, trainer!, snapshot(complete), o.keep, extra).path;
      }
      lastSaved = { step, complete };
      log(`checkpoint ${path} (${((performance.now() - t0) / 1000).toFixed(1)}s)`);
      return path;
    };
    const runValidation = () => {
      if (!validation || !isRoot) return;
      const t0 = performance.now();
      let i = 0;
      const loss = trainer!.evaluate(validation.batches, (ids, targets) => {
        validation.fill(i++, ids, targets);
      });
      o.stopIfOrphaned?.();
      metrics?.write({
        kind: "val",
        stage: spec.dirName,
        step,
        tokens: tokensSeen,
        valLoss: loss,
        valTokens: validation.batches * o.microBatch * o.seqLen,
        time: new Date().toISOString(),
      });
      log(
        `[${spec.dirName}] step ${step} | validation loss ${loss.toFixed(4)} over ${formatTokens(validation.batches * o.microBatch * o.seqLen)} held-out tokens (${((performance.now() - t0) / 1000).toFixed(1)}s)`,
      );
    };

    let interrupted: string | null = null;
    let lastCheckpoint: string | null = resumeFrom;
    let interruptedAt = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      // Under `--nproc-per-node`, Ctrl-C reaches a rank twice (the terminal signals the process
      // group, the launcher forwards): one signal within a second is the same request.
      if (interrupted && dist && Date.now() - interruptedAt < 1000) return;
      if (interrupted) {
        // A second signal means "now": the newest checkpoint on disk stays the resume point.
        log(
          `received ${sig} again: exiting without a checkpoint (resume from ${lastCheckpoint ?? "scratch"})`,
        );
        process.exit(130);
      }
      log(
        `received ${sig}: finishing this step, writing a checkpoint, then exiting (send it again to exit now)`,
      );
      interrupted = sig;
      interruptedAt = Date.now();
    };
    if (o.handleSignals) {
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    }
    let firstLoss: number | null = null;
    let lastLoss: number | null = null;
    let stepsThisRun = 0;
    let lastLog = 0;
    let stepSecondsSum = 0;
    // Distributed ranks stop together: a signal on any rank is agreed on in the step's reduction.
    let agreedStop = false;
    const fillBatch = (ids: Int32Array, targets: Int32Array) => {
      for (let row = 0; row < o.microBatch; row++) stream.next(ids, targets, row);
    };
    const takeStep = async (lr: number): Promise<StepResult> => {
      if (!sharded) return trainer!.step(lr, fillBatch);
      const r = await sharded.step(lr, trainer!.adamStep + 1, fillBatch, interrupted !== null);
      if (r.applied) {
        trainer!.adamStep++;
        trainer!.consecutiveBad = 0;
      } else trainer!.consecutiveBad++;
      if (r.stop) {
        agreedStop = true;
        interrupted ??= "a signal on another rank";
      }
      return r;
    };
    try {
      o.onTrainingStart?.();
      if (!resumeFrom && stageTokens === 0) runValidation();
      while (stageTokens < stageBudget && !(dist ? agreedStop : interrupted)) {
        if (o.maxSteps !== null && stepsThisRun >= o.maxSteps) break;
        o.stopIfOrphaned?.();
        const lr = learningRate(schedule, tokensSeen);
        const profiling = profiler !== null && stepsThisRun + 1 === o.profileStep;
        if (profiling) profiler.start();
        const t0 = performance.now();
        const r = await takeStep(lr);
        o.backend.synchronize();
        const dt = (performance.now() - t0) / 1000;
        if (profiling) writeProfile(profiler.stop(), dt, step + 1);
        elapsed += dt;
        stepSecondsSum += dt;
        step++;
        stepsThisRun++;
        tokensSeen += batchTokens;
        stageTokens += batchTokens;
        if (r.skipped) skippedSteps++;
        else {
          firstLoss ??= r.loss;
          lastLoss = r.loss;
        }
        const tokensPerSec = batchTokens / dt;
        const mfu = mfuOf(tokensPerSec);
        o.stopIfOrphaned?.();
        metrics?.write({
          kind: "train",
          stage: spec.dirName,
          step,
          tokens: tokensSeen,
          loss: r.loss,
          lr,
          gradNorm: r.gradNorm,
          tokensPerSec,
          stepSeconds: dt,
          mfu,
          memoryBytes: sharded ? sharded.memoryBytes() : trainer.memoryBytes(),
          skipped: r.skipped,
          time: new Date().toISOString(),
        });
        if (r.skipped) {
          log(
            `step ${step}: loss ${r.loss} / grad norm ${r.gradNorm} is not finite; update skipped ` +
              `(${trainer.consecutiveBad} in a row, stopping at ${trainer.maxBadSteps})`,
          );
          if (trainer.consecutiveBad >= trainer.maxBadSteps) {
            throw new NonFiniteLossError(
              `loss or gradient norm not finite for ${trainer.consecutiveBad} consecutive steps ` +
                `(steps ${step - trainer.consecutiveBad + 1}..${step}); stopping. Last checkpoint: ${lastCheckpoint ?? (initFrom ? `none of this stage (a rerun starts again from ${initFrom.dir})` : "none")}. ` +
                "Rerunning as is repeats these steps from the same state: lower the learning rate (--lr-max/--lr-min" +
                (lastCheckpoint || initFrom?.state
                  ? ", with --lr-override: the rerun continues a checkpoint"
                  : "") +
                ") or check the data",
            );
          }
        }
        const now = performance.now();
        const done = stageTokens >= stageBudget;
        if (stepsThisRun === 1 || done || now - lastLog >= o.logSeconds * 1000) {
          lastLog = now;
          // The line shows this run's mean rate, and the MFU of that same rate (the metrics
          // file keeps each step's own): a last-step MFU beside a mean rate read as a
          // contradiction ("48.2k tok/s | MFU 55.4%" after a slow first step).
          const meanRate = (batchTokens * stepsThisRun) / stepSecondsSum;
          log(
            progressLine({
              stage: spec.dirName,
              step,
              stageTokens,
              stageBudget,
              loss: r.loss,
              lr,
              gradNorm: r.gradNorm,
              tokensPerSec: meanRate,
              mfu: mfuOf(meanRate),
              skipped: r.skipped,
            }),
          );
        }
        if (o.evalEvery > 0 && step % o.evalEvery === 0 && !done) runValidation();
        if (o.saveEvery > 0 && step % o.saveEvery === 0 && !done)
          lastCheckpoint = await save(false);
        // Let signal handlers run between steps (the step itself is synchronous).
        await new Promise((r) => setImmediate(r));
      }
      const complete = stageTokens >= stageBudget;
      if (complete) runValidation();
      // A stop right after a periodic save (or a resume that trained nothing) has this step on
      // disk already: writing it again would only replace a good checkpoint with the same one.
      if (!lastSaved || lastSaved.step !== step || lastSaved.complete !== complete)
        lastCheckpoint = await save(complete);
      if (complete) {
        log(
          `stage ${spec.dirName} complete: ${step - stageStartStep} step${step - stageStartStep === 1 ? "" : "s"} in this stage (step ${step} of the run), ` +
            `${formatTokens(tokensSeen)} tokens in the run, ${formatDuration(elapsed)} training time`,
        );
        log(`next stage continues from ${lastCheckpoint}`);
        log(`blocks drawn per source: ${stream.report()}`);
      }
      if (interrupted)
        log(`stopped by ${interrupted}; rerun the same command to resume from ${lastCheckpoint}`);
      if (profiler && o.profileStep && stepsThisRun < o.profileStep) {
        log(
          `note: no profile written: --profile-step ${o.profileStep} but this invocation trained ${stepsThisRun} step${stepsThisRun === 1 ? "" : "s"}` +
            (o.maxSteps !== null && o.maxSteps < o.profileStep
              ? ` (--max-steps ${o.maxSteps})`
              : complete
                ? " (the stage ended first)"
                : ""),
        );
      }
      let plot: string | null = null;
      try {
        if (isRoot) plot = plotRun(runDir);
      } catch (e) {
        log(`plot not written: ${(e as Error).message}`);
      }
      return {
        stageDir,
        checkpoint: lastCheckpoint,
        metrics: metricsPath,
        plot,
        steps: stepsThisRun,
        firstLoss,
        lastLoss,
        stageTokens,
        stageBudget,
        complete,
        interrupted,
        skippedSteps,
        secondsPerStep: stepsThisRun > 0 ? stepSecondsSum / stepsThisRun : null,
      };
    } finally {
      if (o.handleSignals) {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    }
  } finally {
    sharded?.dispose();
    if (trainer) trainer.dispose();
    else model?.dispose();
    closeSources(sources);
  }
}

/**
 * The newest usable checkpoint of a stage (run by the process that writes checkpoints): first
 * repairs what a killed writer left (recoverCheckpoints), then verifies checkpoints newest
 * first (headers, sizes, SHA-256). Damaged ones are reported and moved to checkpoints/damaged/,
 * so they never count toward --keep. When there are checkpoints but none is usable, the run
 * stops naming each and what is wrong, unless --restart-stage: nothing is restarted silently.
 */
function newestUsableCheckpoint(
  stageDir: string,
  o: RunOptions,
  log: (line: string) => void,
): CheckpointRef | null {
  for (const line of recoverCheckpoints(stageDir)) log(`note: ${line}`);
  const damaged: { c: CheckpointRef; problem: string }[] = [];
  let own: CheckpointRef | null = null;
  for (const c of listCheckpoints(stageDir).reverse()) {
    const { problem, note } = verifyCheckpoint(c.path);
    if (!problem) {
      own = c;
      if (note) log(`note: ${note}`);
      break;
    }
    log(`warning: skipping damaged checkpoint ${c.path}: ${problem}`);
    damaged.push({ c, problem });
  }
  const aside = join(checkpointsDir(stageDir), DAMAGED_DIR);
  if (!own && damaged.length > 0 && !o.restartStage) {
    throw new Error(
      `every checkpoint of ${stageDir} is damaged, so the stage cannot resume:\n` +
        damaged.map((d) => `  ${d.c.path}: ${d.problem}\n`).join("") +
        "Nothing was changed. Restore them (e.g. from a copy), or rerun with --restart-stage to move them to " +
        `${aside}/ and train the stage again from its start (its metrics.jsonl is started anew)`,
    );
  }
  for (const { c } of damaged) {
    mkdirSync(aside, { recursive: true });
    let dest = join(aside, checkpointName(c.step));
    if (existsSync(dest)) dest = `${dest}-${Date.now()}`;
    renameSync(c.path, dest);
    log(
      `moved damaged checkpoint ${c.path} to ${dest} (it does not count toward --keep; delete it when it is not needed)`,
    );
  }
  if (own && o.restartStage) {
    log(`note: --restart-stage ignored: ${own.path} is usable, resuming from it`);
  } else if (!own && damaged.length > 0) {
    log(`--restart-stage: training ${stageDir} again from its start`);
  }
  return own;
}

/**
 * The base global batch (sequences per step before the stage's multiplier) of a checkpoint of
 * this stage; null when it is not a whole multiple of the multiplier (never, for a checkpoint
 * this trainer wrote).
 */
function checkpointBase(s: TrainerState, spec: StageSpec): number | null {
  const base = s.globalBatchSequences / spec.batchMultiplier;
  return Number.isSafeInteger(base) && base > 0 ? base : null;
}

/**
 * The base global batch a stage continued mid-stage trains with: without --global-batch, the
 * checkpoint's (as for --seed and the lr schedule, which it also keeps), so rerunning on other
 * hardware (another --nproc-per-node, --micro-batch or --sharding) continues the same run; with
 * it, the value given, with a note when that changes the checkpoint's batch (allowed: the lr
 * schedule follows tokens, and reaching a block boundary may need another batch).
 */
function continuedBase(
  o: RunOptions,
  spec: StageSpec,
  cont: { dir: string; state: TrainerState },
  requested: number,
  log: (line: string) => void,
): number {
  const was = checkpointBase(cont.state, spec);
  if (was === null || was === requested) return requested;
  const x = spec.batchMultiplier > 1 ? ` (x ${spec.batchMultiplier} in this stage)` : "";
  if (o.globalBatchGiven ?? true) {
    log(
      `note: --global-batch ${requested} changes the global batch of ${cont.dir} from ${was} to ${requested} sequences${x} ` +
        `per step from step ${cont.state.step} (the lr schedule follows tokens and is unchanged); ` +
        `pass --global-batch ${was} to keep it`,
    );
    return requested;
  }
  log(
    `note: continuing with the global batch of ${cont.dir}: ${was} sequences${x} per step ` +
      `(--global-batch ${was}; the default is ${requested})`,
  );
  return was;
}

/**
 * The base global batch the stage in `outDir` would continue with when --global-batch is not
 * given: the one of its newest checkpoint if the stage is under way, else of --from when that is
 * a checkpoint of this stage; null otherwise. For checks made before the ranks start
 * (`--nproc-per-node`), so they judge the batch the ranks will use; not verified (runStage
 * verifies the checkpoint it resumes from).
 */
export function pendingCheckpointBase(
  outDir: string,
  spec: StageSpec,
  from: string | null,
): number | null {
  try {
    const own = latestCheckpoint(join(resolve(outDir), spec.dirName));
    let dir: string | null = own?.path ?? null;
    if (!dir && from) {
      const d = resolveWeightsDir(resolve(from));
      dir = existsSync(join(d, TRAINER_STATE_FILE)) ? d : null;
    }
    if (!dir) return null;
    const s = readTrainerState(dir);
    if (s.stage.dirName !== spec.dirName || s.complete) return null;
    return checkpointBase(s, spec);
  } catch {
    return null; // runStage reports what is wrong with it
  }
}

/** The StarCoderData subsets the paper's Math&Code stage trains on (section 2.5, Table 6). */
const MATH_CODE_STARCODER = new Set([
  "python",
  "jupyter",
  "jupyter-scripts-dedup-filtered",
  "jupyter-structured-clean-dedup",
]);

/**
 * A note when data/starcoder was prepared from other StarCoderData subsets than Python and
 * Jupyter (e.g. the default `all`): v1.0 and Math&Code share the source name, so the trainer
 * cannot tell which the shards hold except from their manifest's config. Null when they are
 * the paper's, or when the manifest does not say.
 */
export function mathCodeStarcoderNote(config: unknown): string | null {
  const sources = (config as { sources?: unknown } | null)?.sources;
  if (!Array.isArray(sources)) return null;
  const sc = sources.find((s) => (s as { name?: unknown })?.name === "starcoder") as
    | { subsets?: unknown }
    | undefined;
  if (!sc) return null;
  const subsets = Array.isArray(sc.subsets) ? sc.subsets.map(String) : ["all"]; // the default
  const other = subsets.filter((s) => !MATH_CODE_STARCODER.has(s));
  if (other.length === 0) return null;
  return (
    `note: the Math&Code stage trains on StarCoderData's Python and Jupyter only, but the starcoder shards ` +
    `were prepared from subsets ${subsets.join(", ")}; to follow the paper, prepare them with ` +
    `"subsets": ["python", "jupyter"] (pnpm data:prepare --config)`
  );
}

/**
 * The data position a checkpoint carries (block offsets per source, the sampler's state) indexes
 * the shards it was trained on: over other shards the same position reads other blocks. A stage
 * continued mid-way (a resume, or --from a checkpoint of the same stage) whose shards changed is
 * refused, naming the sources, unless --data-changed; the next stage of a chain may use
 * re-prepared shards (e.g. starcoder with Python and Jupyter only for Math&Code), so there a
 * changed source whose block order continues from an offset is noted. Checkpoints written
 * before the shards were recorded are not compared (noted).
 */
function checkShardsUnchanged(
  o: RunOptions,
  dirName: string,
  cont: { dir: string; state: TrainerState } | null,
  prior: TrainerState | null,
  now: Record<string, SourceFingerprint>,
  names: readonly string[],
  log: (line: string) => void,
): void {
  if (cont) {
    if (!cont.state.data) {
      log(
        `note: ${cont.dir} does not record which shards it read (written before they were recorded): ` +
          "resuming without checking that the shards under --data are the same",
      );
      return;
    }
    const changed = changedSources(cont.state.data, now, names);
    if (changed.length === 0) return;
    const what =
      `the shards under ${resolve(o.dataDir)} differ from those ${cont.dir} was trained on:\n` +
      changed.map((c) => `  ${c}\n`).join("");
    if (o.dataChanged) {
      log(
        `warning: ${what}--data-changed: continuing ${dirName} on them; each changed source's block order is another ` +
          "permutation from here on, so blocks may be read again or skipped",
      );
      return;
    }
    throw new Error(
      `${what}The checkpoint's data position (block offsets per source) indexes the old shards; over these it would ` +
        "read other blocks, repeating some already trained on and skipping others. Put back the shards it was trained " +
        "on (re-run `pnpm data:prepare` with the same config and inputs, or pass the --data that holds them), or rerun " +
        "with --data-changed to continue on these shards anyway",
    );
  }
  if (!prior?.data) return;
  const offsets = offsetsAfterStage(prior);
  const carried = names.filter((n) => (offsets[n] ?? 0) > 0);
  const changed = changedSources(prior.data, now, carried);
  if (changed.length === 0) return;
  log(
    `note: shards changed since stage ${prior.stage.dirName}, whose block offsets ${dirName} continues from:\n` +
      changed.map((c) => `  ${c}\n`).join("") +
      "the offsets index another permutation of these shards, so blocks the earlier stage trained on may be read " +
      "again (expected when a source was re-prepared for this stage; otherwise pass the --data it used)",
  );
}

/** Per-source block offsets after the stage a checkpoint belongs to. */
function offsetsAfterStage(s: TrainerState): Record<string, number> {
  const out = { ...s.stream.sourceOffsets };
  for (const [name, n] of Object.entries(s.stream.mixture.counts)) out[name] = (out[name] ?? 0) + n;
  // A block the stage was part-way through (its state is from before that block) counts as read:
  // the next stage starts after it rather than reading its first windows again.
  if (s.stream.window > 0) {
    const current = MixtureSampler.restore(s.stream.mixture).nextBlock();
    out[current.source] = (out[current.source] ?? 0) + 1;
  }
  return out;
}

/**
 * The lr schedule of this stage. A stage that continues a checkpoint of this project (a resume,
 * the next stage of a recipe, or --from one) keeps the checkpoint's --lr-max / --lr-min, as it
 * keeps --seed: changing them mid-run makes the learning rate jump, as it did in the original
 * TinyLlama run when its min lr was corrected. Flags left out take the checkpoint's values;
 * flags given with other values are refused unless --lr-override says the jump is wanted.
 * Warmup and decay come from the stage and --scale; a continued checkpoint whose schedule gives
 * another lr at its position (another --scale, another recipe's mid-run checkpoint) is refused
 * the same way.
 */
function lrSchedule(
  o: RunOptions,
  spec: StageSpec,
  prior: { dir: string; state: TrainerState | null } | null,
  log: (line: string) => void,
): CosineSchedule {
  const requested: CosineSchedule = {
    maxLr: o.maxLr,
    minLr: o.minLr,
    warmupTokens: spec.warmupTokens,
    decayTokens: spec.decayTokens,
  };
  const was = prior?.state?.schedule;
  if (!prior?.state || !was) {
    if (o.lrOverride) log("note: --lr-override has no effect: no checkpoint schedule to override");
    return requested;
  }
  const at = prior.state.tokensSeen;
  const given = o.lrGiven ?? { maxLr: false, minLr: false };
  const before: CosineSchedule = { ...requested, maxLr: was.maxLr, minLr: was.minLr };
  // Warmup and decay end follow --scale: continuing a checkpoint at another scale (the CPU and
  // GPU defaults differ) would move them under the run and make the lr jump, as --lr-min did
  // in the original run. The schedule must continue unchanged across stages and resumes.
  const lrWas = learningRate(was, at);
  const lrNow = learningRate(before, at);
  if (Math.abs(lrNow - lrWas) > 1e-9 * Math.max(lrNow, lrWas)) {
    const wasScale = prior.state.stage.scale;
    const shape = (s: CosineSchedule) =>
      `warmup ${formatTokens(s.warmupTokens)} tokens, cosine end ${formatTokens(s.decayTokens)} tokens`;
    const jump =
      `${prior.dir} was trained with --scale ${wasScale} (${shape(was)}); ` +
      `${spec.dirName} at --scale ${o.scale} has ${shape(before)}: the learning rate jumps from ` +
      `${lrWas.toExponential(3)} to ${lrNow.toExponential(3)} at ${formatTokens(at)} tokens`;
    if (!o.lrOverride)
      throw new Error(
        `${jump} (the lr jump of the original TinyLlama run). ` +
          (wasScale !== o.scale
            ? `Pass --scale ${wasScale} to continue its schedule`
            : "Its schedule belongs to another recipe: start this stage from its own recipe's checkpoints") +
          ", or add --lr-override to make the jump on purpose",
      );
    log(`warning: --lr-override: ${jump}`);
  }
  const out: CosineSchedule = { ...before };
  const kept: string[] = [];
  const changed: string[] = [];
  for (const [key, flag] of [
    ["maxLr", "--lr-max"],
    ["minLr", "--lr-min"],
  ] as const) {
    if (o[key] === was[key]) continue;
    if (given[key]) {
      out[key] = o[key];
      changed.push(`${flag} ${o[key]} (the checkpoint's: ${was[key]})`);
    } else kept.push(`${flag} ${was[key]}`);
  }
  if (kept.length > 0) {
    log(`note: continuing the schedule of ${prior.dir}: ${kept.join(", ")} (not the defaults)`);
  }
  if (changed.length > 0) {
    const jump =
      `the learning rate jumps from ${learningRate(before, at).toExponential(3)} to ` +
      `${learningRate(out, at).toExponential(3)} at ${formatTokens(at)} tokens`;
    if (!o.lrOverride) {
      throw new Error(
        `${changed.join(" and ")} differ${changed.length === 1 ? "s" : ""} from the schedule ${prior.dir} was trained with: ` +
          `${jump} (the lr jump of the original TinyLlama run). Leave the flag out to continue the checkpoint's ` +
          "schedule, or add --lr-override to change it on purpose",
      );
    }
    log(`warning: --lr-override: ${changed.join(" and ")}; ${jump}`);
  }
  return out;
}

/**
 * Why a checkpoint that stopped part-way through a block cannot go on on several ranks, and
 * how to get it to a block boundary. One process's steps need not end on a block boundary
 * (e.g. 8 sequences of 128 tokens out of a block's 16); ranks read whole blocks in lockstep, so
 * after such a position every later step would end mid-block on one rank and not on the
 * others, which one data position per checkpoint cannot describe: continuing would skip or
 * repeat data.
 */
function midBlockOnRanks(dir: string, s: TrainerState, worldSize: number): string {
  const wpb = PAPER_SEQ_LEN / s.seqLen;
  const w = s.stream.window;
  const G = s.globalBatchSequences;
  const multiplier = stageSpec(s.stage.stage as StageName, null).batchMultiplier;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  // The checkpoint's own batch for as many steps as end on a block boundary; else one step of
  // the smallest batch that does (every batch of a stage is a multiple of its multiplier, so
  // one exists).
  let how: string | null = null;
  for (let k = 1; k <= wpb && !how; k++) {
    if ((w + k * G) % wpb === 0) {
      how = `--global-batch ${G / multiplier} --micro-batch ${s.microBatch} --max-steps ${k}`;
    }
  }
  for (let b = 1; b <= wpb && !how; b++) {
    if ((w + b * multiplier) % wpb === 0) {
      how = `--global-batch ${b} --micro-batch ${gcd(b * multiplier, s.microBatch)} --max-steps 1`;
    }
  }
  return (
    `${dir} stopped ${w} of the ${wpb} sequences of ${s.seqLen} tokens into a 2049-token block (one process wrote it); ` +
    `${worldSize} ranks read whole blocks in lockstep, so continuing there on ${worldSize} ranks would skip or repeat data. ` +
    `First continue on one process (without --nproc-per-node)${how ? ` with ${how}` : ""} until a step ends on a block boundary, ` +
    `then rerun on ${worldSize} ranks`
  );
}
