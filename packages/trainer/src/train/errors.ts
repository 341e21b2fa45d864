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
