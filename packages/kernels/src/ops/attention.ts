// Causal grouped-query attention (fused; the T x T matrix is never stored), and the decoding
// step over a KV cache (one new token per sequence).
import type { NativeAddon } from "../native.js";
import type { Tensor } from "../tensor.js";
import type { AttentionOptions } from "../types.js";

export function attentionOps(n: NativeAddon) {
  return {
    attentionForward(
      out: Tensor,
      lse: Tensor,
      q: Tensor,
      k: Tensor,
      v: Tensor,
      options: AttentionOptions,
    ): void {
      n.attentionForward(
        out?.native,
        lse?.native,
        q?.native,
        k?.native,
        v?.native,
        options?.causal,
        options?.scale ?? 0,
      );
    },
    decodeAttention(
      out: Tensor,
      q: Tensor,
      kNew: Tensor,
      vNew: Tensor,
      kCache: Tensor,
      vCache: Tensor,
      meta: Tensor,
      options: { ropeBase: number; scale?: number },
    ): void {
      n.decodeAttention(
        out?.native,
        q?.native,
        kNew?.native,
        vNew?.native,
        kCache?.native,
        vCache?.native,
        meta?.native,
        options?.ropeBase,
        options?.scale ?? 0,
      );
    },
    attentionBackward(
      dq: Tensor,
      dk: Tensor,
      dv: Tensor,
      dOut: Tensor,
      q: Tensor,
      k: Tensor,
      v: Tensor,
      out: Tensor,
      lse: Tensor,
      options: AttentionOptions,
    ): void {
      n.attentionBackward(
        dq?.native,
        dk?.native,
        dv?.native,
        dOut?.native,
        q?.native,
        k?.native,
        v?.native,
        out?.native,
        lse?.native,
        options?.causal,
        options?.scale ?? 0,
      );
    },
  };
}
