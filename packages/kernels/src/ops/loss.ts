// Row ops over the logits: cross-entropy fused with softmax and the logits gradient (written
// over the logits), and the argmax of each row.
import type { NativeAddon } from "../native.js";
import type { Tensor } from "../tensor.js";
import type { CrossEntropyOptions } from "../types.js";

export function lossOps(n: NativeAddon) {
  return {
    crossEntropy(
      losses: Tensor,
      logits: Tensor,
      targets: Tensor,
      options: CrossEntropyOptions,
    ): void {
      n.crossEntropy(
        losses?.native,
        logits?.native,
        targets?.native,
        options?.dlossScale ?? 1,
        options?.computeGrad,
      );
    },
    argmax(out: Tensor, logits: Tensor): void {
      n.argmax(out?.native, logits?.native);
    },
  };
}
