/**
 * The training step over a LlamaModel: gradient accumulation over micro-batches, global-norm
 * clipping folded into AdamW's gradient scale, and NaN/inf handling (a step whose loss or
 * gradient norm is not finite changes nothing and is counted; too many in a row stop the run,
 * naming the step). Gradients, AdamW moments and (on bf16 backends) fp32 master weights live in
 * arenas laid out like the parameters, allocated once; a step allocates no device memory (token
 * ids are copied into planned tensors; measured: 0 allocations per step after the first).
 */

import { planArena } from "@tinyllama/kernels";
import { type LlamaConfig, parameterSpecs } from "../model/config.js";
import type { Arena, Backend, Tensor } from "../model/kernels.js";
import { bindParams, LlamaModel, type LlamaParams } from "../model/llama.js";
import type { ActivationPlan } from "../model/plan.js";
import { Rng } from "../model/rng.js";
import { type AdamWConfig, clipScale } from "../optim/adamw.js";

export interface StepResult {
  loss: number;
  gradNorm: number;
  lr: number;
  /** True when the loss or gradient norm was NaN/inf and the update was skipped. */
  skipped: boolean;
}

/** The run stopped after --max-bad-steps consecutive NaN/inf steps (exit code EXIT_NOT_FINITE). */
export class NonFiniteLossError extends Error {
  override name = "NonFiniteLossError";
}

/**
 * Exit code of `pnpm train` when the loss or gradient norm was not finite for --max-bad-steps
 * steps in a row (launcher.ts reads it): rerunning as is repeats the same steps exactly.
 */
export const EXIT_NOT_FINITE = 4;

export interface TrainerShape {
  microBatch: number;
  seqLen: number;
  accumSteps: number;
  /** Keep only each layer's input and recompute its activations in backward (model.plan). */
  recompute?: boolean;
}

/**
 * Data parallelism as the Trainer sees it (distributed/sharded.ts does the rest): each of
 * `size` ranks computes the gradient of its 1/size of the global batch (the loss scale includes
 * 1/size, so summing over ranks gives the global mean), into one flat f32 buffer padded to a
 * multiple of `shardGroupSize` for reduce-scatter; AdamW moments and master weights are not
 * allocated here (each rank keeps only its shard of them).
 */
export interface DataParallelShape {
  size: number;
  shardGroupSize: number;
}

export class Trainer {
  readonly model: LlamaModel;
  readonly backend: Backend;
  readonly config: LlamaConfig;
  readonly shape: TrainerShape;
  readonly adamw: AdamWConfig;
  readonly grads: LlamaParams;
  private readonly gradArena: Arena;
  /** Sharded mode: every gradient as one flat f32 buffer (entries, alignment gaps, padding). */
  readonly gradFlat: Tensor | null;
  readonly dataParallel: DataParallelShape | null;
  private readonly mArena: Arena | null;
  private readonly vArena: Arena | null;
  /** fp32 master weights when the model computes in bf16; null on f32 backends. */
  private readonly masterArena: Arena | null;
  private readonly names: string[];
  private readonly gradList: Tensor[];
  /** Gradients that backward adds into even on the first micro-batch: zeroed every step. */
  private readonly accumulatedGrads: Tensor[];
  /**
   * Every parameter's AdamW inputs as five flat views, where all arenas place every parameter at
   * the same element offset with no gaps (the 1.1B model: every tensor is a multiple of 128
   * values): one AdamW call for the whole model instead of one per tensor (201 launches for the
   * 1.1B model). The hyperparameters are the same for every tensor, so the bits are the same.
   */
  readonly wholeModelUpdate: {
    param: Tensor;
    master: Tensor | null;
    grad: Tensor;
    m: Tensor;
    v: Tensor;
  } | null;
  readonly plan: ActivationPlan;
  private readonly hostIds: Int32Array;
  private readonly hostTargets: Int32Array;
  /** AdamW updates applied so far (bias correction); skipped steps do not count. */
  adamStep = 0;
  consecutiveBad = 0;
  maxBadSteps: number;

  constructor(
    model: LlamaModel,
    shape: TrainerShape,
    adamw: AdamWConfig,
    opts: { maxBadSteps?: number; dataParallel?: DataParallelShape } = {},
  ) {
    this.model = model;
    this.backend = model.backend;
    this.config = model.config;
    this.shape = shape;
    this.adamw = adamw;
    this.maxBadSteps = opts.maxBadSteps ?? 5;
    const specs = parameterSpecs(this.config);
    this.names = specs.map((s) => s.name);
    const f32 = specs.map((s) => ({ name: s.name, shape: s.shape, dtype: "f32" as const }));
    const k = this.backend;
    const dp = opts.dataParallel ?? null;
    this.dataParallel = dp;
    // What this constructor allocates, freed again should a later allocation fail (a device out
    // of memory at the activation plan, say): a caller that catches the error and retries (a
    // smaller micro-batch, a sweep, a notebook) must not keep gigabytes alive until a GC.
    // The model stays the caller's.
    const made: { dispose(): void }[] = [];
    const own = <T extends { dispose(): void }>(x: T): T => {
      made.push(x);
      return x;
    };
    try {
      if (dp) {
        if (
          !Number.isInteger(dp.size) ||
          dp.size < 1 ||
          !Number.isInteger(dp.shardGroupSize) ||
          dp.shardGroupSize < 1
        ) {
          throw new Error(
            `data parallel size and shard group size must be positive integers, got ${dp.size} / ${dp.shardGroupSize}`,
          );
        }
        const used = planArena(f32).bytes / 4;
        const padded = Math.ceil(used / dp.shardGroupSize) * dp.shardGroupSize;
        this.gradArena = own(
          k.arena([
            ...f32,
            { name: "shard-padding", shape: [Math.max(1, padded - used)], dtype: "f32" as const },
          ]),
        );
        this.gradFlat = own(this.gradArena.whole.viewBytes(0, [padded], "f32"));
        this.mArena = null;
        this.vArena = null;
        this.masterArena = null;
      } else {
        this.gradArena = own(k.arena(f32));
        this.gradFlat = null;
        this.mArena = own(k.arena(f32));
        this.vArena = own(k.arena(f32));
        this.masterArena = model.paramDtype === "f32" ? null : own(k.arena(f32));
      }
      this.grads = bindParams(this.config, this.gradArena);
      this.gradList = this.names.map((n) => this.gradArena.get(n));
      this.wholeModelUpdate = this.planWholeModelUpdate(specs);
      const w = this.wholeModelUpdate;
      if (w) for (const t of [w.param, w.master, w.grad, w.m, w.v]) if (t) own(t);
      this.accumulatedGrads = LlamaModel.accumulatedGrads(this.grads);
      for (const a of [this.gradArena, this.mArena, this.vArena]) if (a) k.fill(a.whole, 0);
      this.plan = model.plan(shape.microBatch, shape.seqLen, true, {
        recompute: shape.recompute ?? false,
      });
    } catch (e) {
      for (const x of made.reverse()) x.dispose();
      throw e;
    }
    this.hostIds = new Int32Array(shape.microBatch * shape.seqLen);
    this.hostTargets = new Int32Array(shape.microBatch * shape.seqLen);
  }

  /** The reference initialisation, deterministic in `seed` on every backend. */
  initWeights(
    seed: number,
    set: (name: string, data: Float32Array) => void = (n, d) => this.setWeight(n, d),
  ): void {
    const rng = new Rng(seed);
    for (const s of parameterSpecs(this.config)) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      if (s.initOnes) data.fill(1);
      else rng.fillNormal(data, s.initStd);
      set(s.name, data);
    }
  }

  /** Sets a parameter from fp32 host data (master and compute copies). */
  setWeight(name: string, data: Float32Array): void {
    this.model.setParam(name, data);
    if (this.masterArena) this.upload(this.masterArena.get(name), data);
  }

  /** The fp32 weights (the master copy where there is one): what checkpoints store. */
  readWeight(name: string): Float32Array {
    const t = this.masterArena ? this.masterArena.get(name) : this.model.paramArena.get(name);
    return t.toFloat32();
  }

  readMoment(which: "m" | "v", name: string): Float32Array {
    return this.moments(which).get(name).toFloat32();
  }

  setMoment(which: "m" | "v", name: string, data: Float32Array): void {
    this.upload(this.moments(which).get(name), data);
  }

  private moments(which: "m" | "v"): Arena {
    const a = which === "m" ? this.mArena : this.vArena;
    if (!a)
      throw new Error("this Trainer is sharded: AdamW moments live in the ShardedTrainer's shards");
    return a;
  }

  private upload(dst: Tensor, data: Float32Array): void {
    if (data.length !== dst.numel) {
      throw new Error(`expected ${dst.numel} values, got ${data.length}`);
    }
    dst.copyFromHost(data);
  }

  /**
   * One optimizer step: `fill(ids, targets)` is called once per micro-batch to write
   * microBatch x seqLen inputs and targets.
   */
  step(lr: number, fill: (ids: Int32Array, targets: Int32Array) => void): StepResult {
    const { loss, gradNorm } = this.computeGradients(fill);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      this.consecutiveBad++;
      return { loss, gradNorm, lr, skipped: true };
    }
    this.consecutiveBad = 0;
    this.applyUpdate(lr, gradNorm);
    return { loss, gradNorm, lr, skipped: false };
  }

  /**
   * Zeroes the gradients, then runs forward + backward over `accumSteps` micro-batches: the
   * gradient of the mean loss over the whole global batch. Returns that loss and the global
   * gradient norm.
   */
  computeGradients(fill: (ids: Int32Array, targets: Int32Array) => void): {
    loss: number;
    gradNorm: number;
  } {
    const loss = this.accumulateGradients(fill);
    const gradNorm = Math.sqrt(this.backend.sumSquares(this.gradList));
    return { loss, gradNorm };
  }

  /**
   * Forward + backward over this rank's `accumSteps` micro-batches into zeroed gradients;
   * returns this rank's mean loss. With data parallelism the gradients are already divided by
   * the number of ranks (sum them over ranks for the global mean). `onGradsReady` is passed to
   * the last micro-batch's backward (see LlamaModel.backward).
   */
  accumulateGradients(
    fill: (ids: Int32Array, targets: Int32Array) => void,
    onGradsReady?: (done: readonly Tensor[]) => void,
  ): number {
    const k = this.backend;
    const { microBatch, seqLen, accumSteps } = this.shape;
    const rows = microBatch * seqLen;
    const dlossScale = 1 / (rows * accumSteps * (this.dataParallel?.size ?? 1));
    // The first micro-batch writes the Linear weights' gradients instead of adding to them, so
    // only the few gradients that ops add into are zeroed, not the whole arena (4.4 GB for the
    // 1.1B model). Alignment gaps and shard padding in the arena stay zero from construction.
    for (const t of this.accumulatedGrads) k.fill(t, 0);
    let lossSum = 0;
    for (let micro = 0; micro < accumSteps; micro++) {
      fill(this.hostIds, this.hostTargets);
      this.model.loadIds(this.plan.ids, this.hostIds, rows);
      this.model.loadIds(this.plan.targets, this.hostTargets, rows);
      this.model.forward(this.plan, true, true, dlossScale);
      lossSum += k.sum(this.plan.losses) / rows;
      // Only the last micro-batch's gradients are final sums.
      this.model.backward(
        this.plan,
        this.grads,
        micro === accumSteps - 1 ? onGradsReady : undefined,
        { overwrite: micro === 0 },
      );
    }
    return lossSum / accumSteps;
  }

  /** One AdamW update from the gradients in place, clipped to the configured global norm. */
  applyUpdate(lr: number, gradNorm: number): void {
    const k = this.backend;
    if (!this.mArena || !this.vArena)
      throw new Error("this Trainer is sharded: ShardedTrainer applies the update");
    this.adamStep++;
    const a = this.adamw;
    const opts = {
      lr,
      beta1: a.beta1,
      beta2: a.beta2,
      eps: a.eps,
      weightDecay: a.weightDecay,
      step: this.adamStep,
      gradScale: clipScale(gradNorm, a.gradClip),
    };
    const whole = this.wholeModelUpdate;
    if (whole) {
      k.adamw(whole.param, whole.master, whole.grad, whole.m, whole.v, opts);
      return;
    }
    for (const name of this.names) {
      const master = this.masterArena ? this.masterArena.get(name) : null;
      k.adamw(
        this.model.paramArena.get(name),
        master,
        this.gradArena.get(name),
        this.mArena.get(name),
        this.vArena.get(name),
        opts,
      );
    }
  }

  /** The flat views of `wholeModelUpdate`, or null where the arenas' layouts differ. */
  private planWholeModelUpdate(
    specs: ReturnType<typeof parameterSpecs>,
  ): Trainer["wholeModelUpdate"] {
    if (!this.mArena || !this.vArena || process.env.TINYLLAMA_WHOLE_MODEL_ADAMW === "off")
      return null;
    const pd = this.model.paramDtype;
    const pBytes = pd === "f32" ? 4 : 2;
    const paramLayout = this.model.paramLayout;
    const f32Layout = planArena(
      specs.map((s) => ({ name: s.name, shape: s.shape, dtype: "f32" as const })),
    );
    const n = f32Layout.bytes / 4;
    // Same element offset for every tensor and no gaps anywhere: the flat views cover exactly
    // the parameters, element for element.
    let values = 0;
    for (const s of specs) {
      const at = (paramLayout.offsets.get(s.name) ?? -1) / pBytes;
      if (at !== values || (f32Layout.offsets.get(s.name) ?? -1) / 4 !== values) return null;
      values += s.shape.reduce((x, y) => x * y, 1);
    }
    if (values !== n || paramLayout.bytes !== n * pBytes) return null;
    const flat = (a: Arena, dtype: "f32" | "bf16") => a.whole.viewBytes(0, [n], dtype);
    return {
      param: flat(this.model.paramArena, pd === "f32" ? "f32" : "bf16"),
      master: this.masterArena ? flat(this.masterArena, "f32") : null,
      grad: flat(this.gradArena, "f32"),
      m: flat(this.mArena, "f32"),
      v: flat(this.vArena, "f32"),
    };
  }

  /** The gradient tensor of a parameter (a view into the gradient arena). */
  gradTensor(name: string): Tensor {
    return this.gradArena.get(name);
  }

  /** One parameter's gradient (f32) after computeGradients or step. */
  readGrad(name: string): Float32Array {
    return this.gradArena.get(name).toFloat32();
  }

  /** Mean loss over `batches` micro-batches without touching gradients (validation). */
  evaluate(batches: number, fill: (ids: Int32Array, targets: Int32Array) => void): number {
    const k = this.backend;
    const rows = this.shape.microBatch * this.shape.seqLen;
    let sum = 0;
    for (let i = 0; i < batches; i++) {
      fill(this.hostIds, this.hostTargets);
      this.model.loadIds(this.plan.ids, this.hostIds, rows);
      this.model.loadIds(this.plan.targets, this.hostTargets, rows);
      this.model.forward(this.plan, true, false);
      sum += k.sum(this.plan.losses) / rows;
    }
    return sum / batches;
  }

  /** Bytes of device memory held by weights, gradients, optimizer state and activations. */
  memoryBytes(): number {
    return (
      this.model.paramArena.bytes +
      this.gradArena.bytes +
      (this.mArena?.bytes ?? 0) +
      (this.vArena?.bytes ?? 0) +
      (this.masterArena?.bytes ?? 0) +
      this.plan.arena.bytes
    );
  }

  dispose(): void {
    this.gradFlat?.dispose();
    const w = this.wholeModelUpdate;
    if (w) for (const t of [w.param, w.master, w.grad, w.m, w.v]) t?.dispose();
    this.gradArena.dispose();
    this.mArena?.dispose();
    this.vArena?.dispose();
    this.masterArena?.dispose();
    this.model.dispose();
  }
}
