// RMSNorm forward (plain and fused with the residual add) and backward.
import type { NativeAddon } from "../native.js";
import type { Tensor } from "../tensor.js";

export function normOps(n: NativeAddon) {
  return {
    rmsnormForward(out: Tensor, rstd: Tensor, x: Tensor, weight: Tensor, eps: number): void {
      n.rmsnormForward(out?.native, rstd?.native, x?.native, weight?.native, eps);
    },
    residualRmsnormForward(
      residualOut: Tensor,
      out: Tensor,
      rstd: Tensor,
      x: Tensor,
      residual: Tensor,
      weight: Tensor,
      eps: number,
    ): void {
      n.residualRmsnormForward(
        residualOut?.native,
        out?.native,
        rstd?.native,
        x?.native,
        residual?.native,
        weight?.native,
        eps,
      );
    },
    rmsnormBackward(
      dx: Tensor,
      dWeight: Tensor,
      dOut: Tensor,
      x: Tensor,
      weight: Tensor,
      rstd: Tensor,
    ): void {
      n.rmsnormBackward(
        dx?.native,
        dWeight?.native,
        dOut?.native,
        x?.native,
        weight?.native,
        rstd?.native,
      );
    },
  };
}
