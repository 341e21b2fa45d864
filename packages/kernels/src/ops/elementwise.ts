// Casts, fill, copy, scale and sum.
import type { NativeAddon } from "../native.js";
import type { Tensor } from "../tensor.js";

export function elementwiseOps(n: NativeAddon) {
  return {
    cast(out: Tensor, x: Tensor): void {
      n.cast(out?.native, x?.native);
    },
    fill(t: Tensor, value: number): void {
      n.fill(t?.native, value);
    },
    copy(dst: Tensor, src: Tensor): void {
      n.copy(dst?.native, src?.native);
    },
    scale(t: Tensor, s: number): void {
      n.scale(t?.native, s);
    },
    sum(t: Tensor): number {
      return n.sum(t?.native);
    },
  };
}
