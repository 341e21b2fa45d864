// Matmul: cuBLASLt on CUDA, a blocked multi-threaded kernel on CPU.
import type { NativeAddon } from "../native.js";
import type { Tensor } from "../tensor.js";
import type { MatmulOptions } from "../types.js";

export function matmulOps(n: NativeAddon) {
  return {
    matmul(out: Tensor, a: Tensor, b: Tensor, options: MatmulOptions = {}): void {
      n.matmul(
        out?.native,
        a?.native,
        b?.native,
        options.transA ?? false,
        options.transB ?? false,
        options.accumulate ?? false,
        options.alpha ?? 1,
      );
    },
  };
}
