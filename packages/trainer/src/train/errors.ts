import { planArena } from "@tinyllama/kernels";
import { type LlamaConfig, parameterSpecs } from "../model/config.js";
import { flatParamPadding, PARAM_PADDING } from "../model/llama.js";
import { activationSpecs } from "../model/plan.js";

/**
 * Turns a device allocation failure into advice: the activation plan grows with the
 * micro-batch, and a smaller micro-batch keeps the same global batch through more gradient
 * accumulation steps, so that is the first thing to try.
 */
const OOM =
  /out of memory|cudaErrorMemoryAllocation|CUDA_ERROR_OUT_OF_MEMORY|cannot allocate|bad_alloc|allocation failed/i;

export function isOutOfMemory(e: unknown): boolean {
  return e instanceof Error && OOM.test(e.message);
}

export function explainOutOfMemory(
  e: unknown,
  where: { device: string; microBatch: number; seqLen: number; plannedBytes?: number },
): Error {
  if (!isOutOfMemory(e)) return e as Error;
  const smaller = Math.max(1, Math.floor(where.microBatch / 2));
  const planned = where.plannedBytes
    ? ` (planned ${(where.plannedBytes / 2 ** 30).toFixed(1)} GiB)`
    : "";
  const advice =
    where.microBatch > 1
      ? `try --micro-batch ${smaller}: the global batch stays the same, reached by more accumulation steps`
      : "micro-batch is already 1: try a shorter --seq-len or a smaller --model";
  return new Error(
    `${where.device} out of memory for micro-batch ${where.microBatch} x ${where.seqLen} tokens${planned}; ${advice}. ` +
      `(${(e as Error).message})`,
  );
}

/**
 * Device bytes a training run plans: weights, gradients, AdamW moments, master copy, activations.
 *
 * With `shardGroupSize` (a sharded run: every distributed run, see distributed/sharded.ts) it is
 * one rank's share, counted as `ShardedTrainer.memoryBytes` counts it: the rank keeps the
 * compute-dtype parameters (padded to the shard group where that arena is the all-gather
 * buffer, else plus a separate gather buffer) and the whole f32 gradient buffer (padded to the
 * shard group), but only 1/S of the fp32 master weights and of both AdamW moments. Counting the
 * unsharded optimizer state refused plans that fit: tinyllama-1.1b at micro-batch 8 on 4 x
 * A100-40G needs about 31 GiB per rank, not 40.
 */
export function trainingBytes(
  c: LlamaConfig,
  microBatch: number,
  seqLen: number,
  onCpu: boolean,
  recompute = false,
  shardGroupSize: number | null = null,
): { state: number; activations: number } {
  const specs = parameterSpecs(c);
  const dtype = onCpu ? ("f32" as const) : ("bf16" as const);
  const f32 = specs.map((s) => ({ name: s.name, shape: s.shape, dtype: "f32" as const }));
  const compute = specs.map((s) => ({ name: s.name, shape: s.shape, dtype }));
  const f32Bytes = planArena(f32).bytes;
  const activations = planArena(
    activationSpecs(c, microBatch, seqLen, true, dtype, recompute),
  ).bytes;
  if (shardGroupSize === null) {
    const state = planArena(compute).bytes + f32Bytes * (onCpu ? 3 : 4);
    return { state, activations };
  }
  // The same arenas Trainer (dataParallel), LlamaModel (shardGroupSize) and ShardedTrainer build.
  const S = shardGroupSize;
  const used = f32Bytes / 4;
  const padded = Math.ceil(used / S) * S;
  const grads = planArena([
    ...f32,
    { name: "shard-padding", shape: [Math.max(1, padded - used)], dtype: "f32" as const },
  ]).bytes;
  const padding = flatParamPadding(c, dtype, S);
  const paramLayout = planArena(
    padding ? [...compute, { name: PARAM_PADDING, shape: [padding], dtype }] : compute,
  );
  const f32Layout = planArena(f32);
  const bytesPer = onCpu ? 4 : 2;
  // ShardedTrainer's own test for gathering into the parameter arena.
  const gathersIntoParams =
    process.env.TINYLLAMA_SHARDED_GATHER !== "separate" &&
    paramLayout.bytes >= padded * bytesPer &&
    specs.every(
      (s) => paramLayout.offsets.get(s.name) === (f32Layout.offsets.get(s.name)! / 4) * bytesPer,
    );
  const gather = gathersIntoParams ? 0 : padded * bytesPer;
  // This rank's shard of the moments, plus of the master weights when parameters are bf16.
  const shards = (padded / S) * 4 * (onCpu ? 2 : 3);
  return { state: paramLayout.bytes + grads + gather + shards, activations };
}

/**
 * Refuses a plan that cannot fit the device before allocating anything (CUDA reports its
 * memory; the CPU reports 0 and is not checked), naming the largest micro-batch that fits.
 * `shardGroupSize`: a sharded run, where each rank holds 1/S of the optimizer state.
 */
export function assertFitsDevice(
  c: LlamaConfig,
  microBatch: number,
  seqLen: number,
  device: { backend: string; name: string; totalMemory: number },
  {
    headroom = 0.92,
    recompute = false,
    shardGroupSize = null,
  }: { headroom?: number; recompute?: boolean; shardGroupSize?: number | null } = {},
): void {
  if (!(device.totalMemory > 0)) return;
  const budget = device.totalMemory * headroom;
  const onCpu = device.backend === "cpu";
  const bytes = (mb: number, rc: boolean) => {
    const n = trainingBytes(c, mb, seqLen, onCpu, rc, shardGroupSize);
    return { ...n, total: n.state + n.activations };
  };
  const need = bytes(microBatch, recompute);
  if (need.total <= budget) return;
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  let fit = microBatch;
  while (fit > 1) {
    fit = Math.floor(fit / 2);
    if (bytes(fit, recompute).total <= budget) break;
  }
  const fitNeed = bytes(fit, recompute);
  const withRecompute = recompute ? null : bytes(microBatch, true);
  const advice =
    withRecompute && withRecompute.total <= budget
      ? `try --recompute layers (about ${gib(withRecompute.total)} GiB, one more forward pass per step), or --micro-batch ${fit}: the global batch stays the same, reached by more accumulation steps`
      : fitNeed.total <= budget
        ? `try --micro-batch ${fit} (about ${gib(fitNeed.total)} GiB): the global batch stays the same, reached by more accumulation steps`
        : "even micro-batch 1 does not fit: try a shorter --seq-len or a smaller --model";
  const what =
    shardGroupSize === null
      ? "weights, gradients and AdamW"
      : `weights, gradients and this rank's 1/${shardGroupSize} of the AdamW state`;
  throw new Error(
    `${device.name} out of memory: ${c.name} with micro-batch ${microBatch} x ${seqLen} tokens needs about ` +
      `${gib(need.total)} GiB${shardGroupSize === null ? "" : " per rank"} (${what} ${gib(need.state)}, activations ${gib(need.activations)}) ` +
      `of the ${gib(device.totalMemory)} GiB on the device; ${advice}`,
  );
}
