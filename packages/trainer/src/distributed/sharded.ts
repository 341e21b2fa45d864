/**
 * Sharded data parallelism (ZeRO / FSDP style) over a Trainer in data-parallel mode.
 *
 * The flat f32 gradient buffer (every parameter at its arena offset, padded to a multiple of
 * the shard group size S) is cut into S contiguous shards; group rank i owns shard i: its slice
 * of the fp32 master weights and of both AdamW moments. A step:
 *   1. each rank runs forward/backward over its part of the global batch (loss pre-scaled by
 *      1/world size);
 *   2. reduce-scatter of the gradients in the shard group (in place: the rank's shard of the
 *      flat buffer ends up holding the sum); hybrid sharding then all-reduces that shard across
 *      the replica group (same position on the other nodes), so every replica holds the global
 *      sum;
 *   3. one host reduction over the world: mean loss, squared gradient norm (shards of one
 *      replica only), and a stop flag, so every rank takes the same decisions (skip a
 *      non-finite step, stop on a signal);
 *   4. AdamW on the shard (the clip factor folded in), writing the compute-dtype parameter
 *      shard into a flat gather buffer; all-gather of that buffer in the shard group; copies
 *      into the model's parameter arena.
 * Memory per rank: compute-dtype parameters (once where the model's arena, padded to the shard
 * group, is the gather buffer itself, as for every TinyLlama size; else twice), the full f32
 * gradient buffer, and 1/S of the master weights and moments: full sharding (S = world) is
 * ZeRO-2 with parameters replicated for compute; hybrid (S = ranks per node) keeps inter-node
 * traffic to one all-reduce of 1/S of the gradients.
 *
 * Checkpoints stay in the single-process format (HF weights + optimizer.safetensors): rank 0
 * gathers the shards (through the free gradient buffer) and writes them, so a checkpoint
 * resumes on any number of ranks, or none: each rank keeps the slice of each tensor it owns.
 */
import { planArena } from "@tinyllama/kernels";
import type { Communicator } from "@tinyllama/kernels/collectives";
import type { CheckpointSource, CheckpointTarget } from "../checkpoint/trainer-checkpoint.js";
import { type LlamaConfig, parameterSpecs } from "../model/config.js";
import type { Backend, Tensor } from "../model/kernels.js";
import { clipScale } from "../optim/adamw.js";
import type { StepResult, Trainer } from "../train/trainer.js";

export type ShardingMode = "full" | "hybrid";

export interface ShardGroups {
  world: Communicator;
  /** Ranks sharing one copy of the optimizer state: the world (full) or this node (hybrid). */
  shard: Communicator;
  /** Hybrid with several nodes: this rank's counterparts on the other nodes; else null. */
  replica: Communicator | null;
  mode: ShardingMode;
}

interface Slot {
  name: string;
  offset: number;
  numel: number;
  shape: readonly number[];
}

export interface ShardedOptions {
  /**
   * Reduce gradients while backward runs: as each layer's gradients are final, their part of the
   * flat buffer is reduced to the rank(s) that own it (one `reduce` per owner), on the
   * communication stream beside the rest of backward; the step joins before the optimizer.
   * Same results as one reduce-scatter after backward (the same sums; bitwise on TCP). Hybrid
   * sharding also sums each owned piece across nodes during backward (`allReduce` ordered
   * after the shard group's reduce of it).
   */
  overlapComm?: boolean;
}

export interface ShardedStepResult extends StepResult {
  /** Some rank asked to stop (a signal): every rank stops after this step. */
  stop: boolean;
}

export class ShardedTrainer implements CheckpointTarget {
  readonly trainer: Trainer;
  readonly groups: ShardGroups;
  readonly config: LlamaConfig;
  private readonly k: Backend;
  private readonly slots: Slot[];
  /** Elements per shard and this rank's first element in the flat layout. */
  readonly shardLength: number;
  readonly shardStart: number;
  private readonly gradFlat: Tensor;
  private readonly gradShard: Tensor;
  /** Compute-dtype parameters in the flat layout (all-gather target). */
  private readonly gather: Tensor;
  /**
   * Whether `gather` is the model's parameter arena itself (built with `shardGroupSize`, and
   * with the flat layout: see flatParamPadding), so no separate copy of the weights exists and
   * nothing is copied after the all-gather.
   */
  readonly gathersIntoParams: boolean;
  private readonly paramShard: Tensor;
  /** fp32 master shard when parameters are bf16; for f32 parameters the shard of `gather` is the master. */
  private readonly masterShard: Tensor | null;
  private readonly mShard: Tensor;
  private readonly vShard: Tensor;
  private readonly viewsToDispose: Tensor[] = [];
  readonly overlapComm: boolean;
  /** Gradient tensors in flat-buffer order, and each one's index there (overlap bookkeeping). */
  private readonly gradOrder: { offset: number }[];
  private readonly gradIndex = new Map<Tensor, number>();

  constructor(trainer: Trainer, groups: ShardGroups, opts: ShardedOptions = {}) {
    const dp = trainer.dataParallel;
    if (!dp || !trainer.gradFlat)
      throw new Error("ShardedTrainer needs a Trainer built with dataParallel");
    if (dp.size !== groups.world.size || dp.shardGroupSize !== groups.shard.size) {
      throw new Error(
        `Trainer planned for ${dp.size} ranks in shard groups of ${dp.shardGroupSize}, groups are ${groups.world.size} / ${groups.shard.size}`,
      );
    }
    this.trainer = trainer;
    this.groups = groups;
    this.config = trainer.config;
    this.k = trainer.backend;
    const specs = parameterSpecs(this.config).map((s) => ({
      name: s.name,
      shape: s.shape,
      dtype: "f32" as const,
    }));
    const layout = planArena(specs);
    this.slots = specs.map((s) => ({
      name: s.name,
      offset: layout.offsets.get(s.name)! / 4,
      numel: s.shape.reduce((a, b) => a * b, 1),
      shape: s.shape,
    }));
    this.gradFlat = trainer.gradFlat;
    this.overlapComm = opts.overlapComm ?? false;
    const byOffset = [...this.slots].sort((a, b) => a.offset - b.offset);
    this.gradOrder = byOffset.map((s) => ({ offset: s.offset }));
    for (const [i, s] of byOffset.entries()) this.gradIndex.set(trainer.gradTensor(s.name), i);
    const S = groups.shard.size;
    this.shardLength = this.gradFlat.numel / S;
    this.shardStart = groups.shard.rank * this.shardLength;
    const k = this.k;
    const view = (t: Tensor, off: number, n: number) => {
      const v = t.view(off, [n]);
      this.viewsToDispose.push(v);
      return v;
    };
    // Buffers allocated here, freed again should a later allocation fail (a device out of
    // memory): a caller that catches the error must not keep them alive until a GC. The Trainer
    // stays the caller's.
    const buffers: Tensor[] = [];
    const zeros = (n: number, dtype: Tensor["dtype"]) => {
      const t = k.zeros([n], dtype);
      buffers.push(t);
      return t;
    };
    try {
      this.gradShard = view(this.gradFlat, this.shardStart, this.shardLength);
      const dtype = trainer.model.paramDtype;
      const model = trainer.model;
      const bytes = dtype === "f32" ? 4 : 2;
      // TINYLLAMA_SHARDED_GATHER=separate keeps a separate buffer (for comparisons).
      this.gathersIntoParams =
        process.env.TINYLLAMA_SHARDED_GATHER !== "separate" &&
        model.paramArena.bytes >= this.gradFlat.numel * bytes &&
        this.slots.every((s) => model.paramLayout.offsets.get(s.name) === s.offset * bytes);
      if (this.gathersIntoParams) {
        this.gather = model.paramArena.whole.viewBytes(0, [this.gradFlat.numel], dtype);
        this.viewsToDispose.push(this.gather);
      } else {
        this.gather = zeros(this.gradFlat.numel, dtype);
      }
      this.paramShard = view(this.gather, this.shardStart, this.shardLength);
      this.masterShard = dtype === "f32" ? null : zeros(this.shardLength, "f32");
      this.mShard = zeros(this.shardLength, "f32");
      this.vShard = zeros(this.shardLength, "f32");
    } catch (e) {
      for (const v of this.viewsToDispose) v.dispose();
      for (const t of buffers) t.dispose();
      throw e;
    }
  }

  /** The part of parameter `slot` inside this rank's shard: [from, to) within the parameter. */
  private overlap(slot: Slot): { from: number; to: number; at: number } | null {
    const lo = Math.max(slot.offset, this.shardStart);
    const hi = Math.min(slot.offset + slot.numel, this.shardStart + this.shardLength);
    if (hi <= lo) return null;
    return { from: lo - slot.offset, to: hi - slot.offset, at: lo - this.shardStart };
  }

  private slot(name: string): Slot {
    const s = this.slots.find((x) => x.name === name);
    if (!s) throw new Error(`no parameter named ${name}`);
    return s;
  }

  private uploadSlice(dst: Tensor, name: string, data: Float32Array): void {
    const s = this.slot(name);
    if (data.length !== s.numel)
      throw new Error(`parameter ${name}: expected ${s.numel} values, got ${data.length}`);
    const o = this.overlap(s);
    if (!o) return;
    const v = dst.view(o.at, [o.to - o.from]);
    v.copyFromHost(data.subarray(o.from, o.to));
    v.dispose();
  }

  /** Full fp32 weights of a parameter: the compute copy, and this rank's slice of the master. */
  setWeight(name: string, data: Float32Array): void {
    this.trainer.model.setParam(name, data);
    this.uploadSlice(this.masterShard ?? this.paramShard, name, data);
  }

  setMoment(which: "m" | "v", name: string, data: Float32Array): void {
    this.uploadSlice(which === "m" ? this.mShard : this.vShard, name, data);
  }

  initWeights(seed: number): void {
    this.trainer.initWeights(seed, (n, d) => this.setWeight(n, d));
  }

  /** One optimizer step over the global batch; every rank returns the same numbers. */
  async step(
    lr: number,
    adamStep: number,
    fill: (ids: Int32Array, targets: Int32Array) => void,
    stopRequested: boolean,
  ): Promise<ShardedStepResult & { applied: boolean }> {
    const { world, shard, replica } = this.groups;
    const k = this.k;
    let localLoss: number;
    if (this.overlapComm) {
      // Shard reduction and (hybrid) the replica all-reduce of each owned piece, during backward.
      const pending = this.overlappedReduction();
      localLoss = this.trainer.accumulateGradients(fill, pending.onGradsReady);
      await pending.finish();
    } else {
      localLoss = this.trainer.accumulateGradients(fill);
      await shard.reduceScatter(this.gradShard, this.gradFlat, "sum");
      if (replica) await replica.allReduce(this.gradShard, "sum");
    }
    // Norm: one replica's shards cover the gradient once.
    const countsNorm = !replica || replica.rank === 0;
    const sq = countsNorm ? k.sumSquares([this.gradShard]) : 0;
    const [lossSum, sqSum, stops] = await world.allReduceHost([
      localLoss,
      sq,
      stopRequested ? 1 : 0,
    ]);
    const loss = lossSum! / world.size;
    const gradNorm = Math.sqrt(sqSum!);
    const stop = stops! > 0;
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      return { loss, gradNorm, lr, skipped: true, stop, applied: false };
    }
    const a = this.trainer.adamw;
    k.adamw(this.paramShard, this.masterShard, this.gradShard, this.mShard, this.vShard, {
      lr,
      beta1: a.beta1,
      beta2: a.beta2,
      eps: a.eps,
      weightDecay: a.weightDecay,
      step: adamStep,
      gradScale: clipScale(gradNorm, a.gradClip),
    });
    await shard.allGather(this.gather, this.paramShard);
    if (!this.gathersIntoParams) this.copyOutParams();
    await shard.flush();
    return { loss, gradNorm, lr, skipped: false, stop, applied: true };
  }

  /**
   * Backward finishes gradients from the end of the flat buffer to its start (LM head, layers
   * last to first, embedding). Each time the finished part grows into a longer suffix, the new
   * stretch [lo, frontier) is reduced, cut at shard boundaries, each piece to its owner: the
   * pieces of one step tile the buffer exactly once, so the owners end with what one
   * reduce-scatter gives. Every rank runs the same backward, so all issue the same sequence.
   */
  private overlappedReduction(): {
    onGradsReady: (done: readonly Tensor[]) => void;
    finish: () => Promise<void>;
  } {
    const { shard, replica } = this.groups;
    const L = this.shardLength;
    const done = new Uint8Array(this.gradOrder.length);
    let next = this.gradOrder.length; // gradOrder[next..] are reduced
    let frontier = this.gradFlat.numel;
    const issued: Promise<void>[] = [];
    const views: Tensor[] = [];
    const reduceRange = (lo: number, hi: number) => {
      for (let r = Math.floor(lo / L); r * L < hi; r++) {
        const a = Math.max(lo, r * L);
        const b = Math.min(hi, (r + 1) * L);
        const v = this.gradFlat.view(a, [b - a]);
        views.push(v);
        issued.push(shard.reduce(v, r, "sum", { overlap: true }));
        // Hybrid: the owner's counterparts on the other nodes own the same piece; they sum it
        // across nodes as soon as each node's shard group has reduced it.
        if (replica && r === shard.rank) {
          issued.push(replica.allReduce(v, "sum", { overlap: true, after: shard }));
        }
      }
      frontier = lo;
    };
    return {
      onGradsReady: (ts) => {
        for (const t of ts) {
          const i = this.gradIndex.get(t);
          if (i === undefined)
            throw new Error("overlapped reduction: a gradient outside the flat buffer");
          done[i] = 1;
        }
        const before = next;
        while (next > 0 && done[next - 1]) next--;
        if (next < before) reduceRange(next === 0 ? 0 : this.gradOrder[next]!.offset, frontier);
      },
      finish: async () => {
        try {
          if (frontier > 0) reduceRange(0, frontier); // a gradient backward never reported
          await Promise.all(issued);
          await shard.join();
          if (replica) await replica.join();
        } finally {
          for (const v of views) v.dispose();
        }
      },
    };
  }

  private copyOutParams(): void {
    const arena = this.trainer.model.paramArena;
    for (const s of this.slots) {
      const src = this.gather.view(s.offset, s.shape);
      this.k.copy(arena.get(s.name), src);
      src.dispose();
    }
  }

  /**
   * Gathers master weights and moments to rank 0's host memory (a collective: every rank calls
   * it). Returns a CheckpointSource on world rank 0, null elsewhere. Uses the gradient buffer
   * as staging, so call it between steps.
   */
  async gatherState(): Promise<CheckpointSource | null> {
    const { world, shard } = this.groups;
    const isRoot = world.rank === 0;
    const pull = async (src: Tensor): Promise<Float32Array | null> => {
      await shard.allGather(this.gradFlat, src);
      await shard.flush();
      return isRoot ? this.gradFlat.toFloat32() : null;
    };
    // f32 parameters: the rank's shard of the gather buffer is the master copy.
    const master = await pull(this.masterShard ?? this.paramShard);
    const m = await pull(this.mShard);
    const v = await pull(this.vShard);
    this.k.fill(this.gradFlat, 0);
    if (!isRoot) return null;
    const slice = (a: Float32Array, name: string) => {
      const s = this.slot(name);
      return a.slice(s.offset, s.offset + s.numel);
    };
    return {
      config: this.config,
      readWeight: (n) => slice(master!, n),
      readMoment: (which, n) => slice(which === "m" ? m! : v!, n),
    };
  }

  /** Device bytes this rank holds for training (weights, gradients, shards, activations). */
  memoryBytes(): number {
    const t = this.trainer;
    const shardBytes = this.shardLength * 4 * (this.masterShard ? 3 : 2);
    return t.memoryBytes() + (this.gathersIntoParams ? 0 : this.gather.bytes) + shardBytes;
  }

  dispose(): void {
    for (const v of this.viewsToDispose) v.dispose();
    if (!this.gathersIntoParams) this.gather.dispose();
    this.masterShard?.dispose();
    this.mShard.dispose();
    this.vShard.dispose();
  }
}
