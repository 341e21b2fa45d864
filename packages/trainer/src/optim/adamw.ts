/**
 * AdamW hyperparameters (TinyLlama / Llama 2): beta1 0.9, beta2 0.95, eps 1e-8, weight decay 0.1
 * applied to every parameter as the reference implementation did, gradients clipped to global
 * norm 1.0. The update itself is the kernels' fused `adamw` (fp32 m, v and master weights), with
 * the clip factor folded into its gradient scale.
 */
export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this value (0 disables clipping). */
  gradClip: number;
}

export const TINYLLAMA_ADAMW: Readonly<AdamWConfig> = Object.freeze({
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  gradClip: 1.0,
});

/** Multiplier applied to gradients so their global norm is at most `maxNorm`. */
export function clipScale(gradNorm: number, maxNorm: number): number {
  if (maxNorm <= 0) return 1;
  return gradNorm > maxNorm ? maxNorm / (gradNorm + 1e-6) : 1;
}
