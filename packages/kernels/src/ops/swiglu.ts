// SwiGLU: silu(gate) * up, and its backward.
import type { NativeAddon } from "../native.js";
import type { Tensor } from "../tensor.js";

export function swigluOps(n: NativeAddon) {
  return {
    swigluForward(out: Tensor, gate: Tensor, up: Tensor): void {
      n.swigluForward(out?.native, gate?.native, up?.native);
    },
    swigluBackward(dGate: Tensor, dUp: Tensor, dOut: Tensor, gate: Tensor, up: Tensor): void {
      n.swigluBackward(dGate?.native, dUp?.native, dOut?.native, gate?.native, up?.native);
    },
  };
}
