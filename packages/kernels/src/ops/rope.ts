// Rotary position embedding in Hugging Face Llama's rotate-half layout.
import type { NativeAddon } from "../native.js";
import type { Tensor } from "../tensor.js";
import type { RopeOptions } from "../types.js";

export function ropeOps(n: NativeAddon) {
  return {
    ropeForward(out: Tensor, x: Tensor, options: RopeOptions): void {
      n.rope(out?.native, x?.native, options?.base, options?.positionOffset ?? 0, false);
    },
    ropeBackward(dx: Tensor, dOut: Tensor, options: RopeOptions): void {
      n.rope(dx?.native, dOut?.native, options?.base, options?.positionOffset ?? 0, true);
    },
  };
}
