import { planArena } from "@tinyllama/kernels";
import { type LlamaConfig, parameterSpecs } from "../model/config.js";
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

/** Device bytes a training run plans: weights, gradients, AdamW moments, master copy, activations. */
export function trainingBytes(
  c: LlamaConfig,
  microBatch: number,
  seqLen: number,
  onCpu: boolean,
  recompute = false,
): { state: number; activations: number } {
  const specs = parameterSpecs(c);
  const f32 = specs.map((s) => ({ name: s.name, shape: s.shape, dtype: "f32" as const }));
  const compute = specs.map((s) => ({
    name: s.name,
    shape: s.shape,
    dtype: onCpu ? ("f32" as const) : ("bf16" as const),
  }));
  const f32Bytes = planArena(f32).bytes;
  const state = planArena(compute).bytes + f32Bytes * (onCpu ? 3 : 4);
  const activations = planArena(
    activationSpecs(c, microBatch, seqLen, true, onCpu ? "f32" : "bf16", recompute),
  ).bytes;
  return { state, activations };
}

/**
 * Refuses a plan that cannot fit the device before allocating anything (CUDA reports its
 * memory; the CPU reports 0 and is not checked), naming the largest micro-batch that fits.
 */
export function assertFitsDevice(
  c: LlamaConfig,
  microBatch: number,
  seqLen: number,
  device: { backend: string; name: string; totalMemory: number },
  { headroom = 0.92, recompute = false }: { headroom?: number; recompute?: boolean } = {},
): void {
  if (!(device.totalMemory > 0)) return;
  const budget = device.totalMemory * headroom;
  const onCpu = device.backend === "cpu";
  const need = trainingBytes(c, microBatch, seqLen, onCpu, recompute);
  if (need.state + need.activations <= budget) return;
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  let fit = microBatch;
  while (fit > 1) {
    fit = Math.floor(fit / 2);
    const n = trainingBytes(c, fit, seqLen, onCpu, recompute);
    if (n.state + n.activations <= budget) break;
  }
  const fitNeed = trainingBytes(c, fit, seqLen, onCpu, recompute);
  const withRecompute = recompute ? null : trainingBytes(c, microBatch, seqLen, onCpu, true);
  const advice =
    withRecompute && withRecompute.state + withRecompute.activations <= budget
      ? `try --recompute layers (about ${gib(withRecompute.state + withRecompute.activations)} GiB, one more forward pass per step), or --micro-batch ${fit}: the global batch stays the same, reached by more accumulation steps`
      : fitNeed.state + fitNeed.activations <= budget
        ? `try --micro-batch ${fit} (about ${gib(fitNeed.state + fitNeed.activations)} GiB): the global batch stays the same, reached by more accumulation steps`
        : "even micro-batch 1 does not fit: try a shorter --seq-len or a smaller --model";
  throw new Error(
    `${device.name} out of memory: ${c.name} with micro-batch ${microBatch} x ${seqLen} tokens needs about ` +
      `${gib(need.state + need.activations)} GiB (weights, gradients and AdamW ${gib(need.state)}, activations ${gib(need.activations)}) ` +
      `of the ${gib(device.totalMemory)} GiB on the device; ${advice}`,
  );
}
