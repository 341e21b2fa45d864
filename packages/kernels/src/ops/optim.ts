// AdamW on f32 master weights (bf16 parameter copies) and the global gradient norm.
import type { NativeAddon } from "../native.js";
import type { Tensor } from "../tensor.js";
import type { AdamWOptions } from "../types.js";

export function optimOps(n: NativeAddon) {
  return {
    adamw(
      param: Tensor,
      master: Tensor | null,
      grad: Tensor,
      m: Tensor,
      v: Tensor,
      o: AdamWOptions,
    ): void {
      n.adamw(
        param?.native,
        master === null ? null : master?.native,
        grad?.native,
        m?.native,
        v?.native,
        o?.lr,
        o?.beta1,
        o?.beta2,
        o?.eps,
        o?.weightDecay,
        o?.step,
        o?.gradScale ?? 1,
      );
    },
    sumSquares(tensors: readonly Tensor[]): number {
      return n.sumSquares(
        Array.isArray(tensors) ? tensors.map((t) => t?.native) : (tensors as never),
      );
    },
  };
}
