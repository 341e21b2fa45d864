// Embedding lookup and its deterministic scatter-add backward (native/{cpu,cuda}).
import type { NativeAddon } from "../native.js";
import type { Tensor } from "../tensor.js";

export function embeddingOps(n: NativeAddon) {
  return {
    embeddingForward(out: Tensor, table: Tensor, ids: Tensor): void {
      n.embeddingForward(out?.native, table?.native, ids?.native);
    },
    embeddingBackward(dTable: Tensor, dOut: Tensor, ids: Tensor): void {
      n.embeddingBackward(dTable?.native, dOut?.native, ids?.native);
    },
  };
}
