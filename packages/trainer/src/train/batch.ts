/**
 * How a global batch splits into micro-batches on each rank, checked before anything heavy
 * happens: by runStage, and by the `--nproc-per-node` launcher before it starts any rank (so a
 * batch that cannot split is one usage error, not one per rank). A refusal names one
 * combination that works, so following the advice never leads to a second refusal.
 */
import { PAPER_SEQ_LEN } from "../stages/stages.js";

export interface BatchShape {
  /** Sequences per step before the stage's multiplier (`--global-batch`, or the paper's). */
  baseSeqs: number;
  /** The cooldown's batch multiplier (1 elsewhere). */
  multiplier: number;
  microBatch: number;
  worldSize: number;
  seqLen: number;
}

export interface BatchPlan {
  /** Sequences per optimizer step over all ranks. */
  globalSeqs: number;
  /** Sequences each rank trains per step. */
  perRank: number;
  /** Micro-batches per rank per step. */
  accumSteps: number;
}

/** A batch that cannot split as asked; the message names flags that work. */
export class BatchSplitError extends Error {
  override name = "BatchSplitError";
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number) => (a / gcd(a, b)) * b;
/** The largest divisor of n that is at most `atMost`. */
function largestDivisor(n: number, atMost: number): number {
  for (let d = Math.min(n, atMost); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

export function planBatch(s: BatchShape): BatchPlan {
  const { microBatch: mb, worldSize: W, seqLen } = s;
  const globalSeqs = s.baseSeqs * s.multiplier;
  const cooldown =
    s.multiplier > 1 ? ` (--global-batch ${s.baseSeqs} x ${s.multiplier} in this stage)` : "";
  if (W === 1) {
    if (globalSeqs % mb !== 0) {
      throw new BatchSplitError(
        `impossible batch split: a global batch of ${globalSeqs} sequences${cooldown} is not a multiple of ` +
          `micro-batch ${mb}; use --micro-batch ${largestDivisor(globalSeqs, mb)} (the same global batch in more accumulation steps)`,
      );
    }
    return { globalSeqs, perRank: globalSeqs, accumSteps: globalSeqs / mb };
  }
  // Ranks read whole 2049-token blocks of one global stream in lockstep: a step must end on a
  // block boundary on every rank for the global batch to be the one of a single process.
  const windowsPerBlock = PAPER_SEQ_LEN / seqLen;
  const perRank = globalSeqs / W;
  if (Number.isInteger(perRank) && perRank % windowsPerBlock === 0) {
    if (perRank % mb !== 0) {
      // The global batch is fine; only the micro-batch is not: keep the batch (a hyperparameter).
      throw new BatchSplitError(
        `impossible batch split: with ${W} ranks each rank trains ${perRank} of the ${globalSeqs} sequences per step${cooldown}, ` +
          `which is not a multiple of micro-batch ${mb}; use --micro-batch ${largestDivisor(perRank, mb)}`,
      );
    }
    return { globalSeqs, perRank, accumSteps: perRank / mb };
  }
  // Keep the micro-batch (a memory choice); the smallest global batch from the one asked for up
  // whose share per rank is whole blocks in whole micro-batches.
  const unit = lcm(mb, windowsPerBlock);
  const stepBase = (W * unit) / gcd(W * unit, s.multiplier);
  const base = Math.ceil(s.baseSeqs / stepBase) * stepBase;
  const share = (base * s.multiplier) / W;
  const per = Number.isInteger(perRank) ? `${perRank}` : (globalSeqs / W).toFixed(2);
  const blocks =
    windowsPerBlock > 1
      ? `whole 2048-token blocks (${windowsPerBlock} sequences of ${seqLen} tokens) in micro-batches of ${mb}`
      : `whole micro-batches of ${mb}`;
  throw new BatchSplitError(
    `impossible batch split: with ${W} ranks each rank trains ${per} of the ${globalSeqs} sequences per step${cooldown}, ` +
      `which must be a multiple of ${unit} (${blocks}); use --global-batch ${base} ` +
      `(${share} sequences per rank, ${share / mb} micro-batch${share / mb === 1 ? "" : "es"} of ${mb} each)`,
  );
}
