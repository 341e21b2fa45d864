/**
 * Activation plan: every buffer the forward and backward passes touch for a (batch, seqLen)
 * shape, placed in one arena up front so a training step allocates nothing. In training mode
 * each layer keeps its own activations for backward; in inference mode all layers share one
 * set (and two residual buffers alternate), so scoring a long batch needs little memory.
 * Training with recomputation keeps only each layer's input (the residual stream) and one
 * shared set: backward recomputes a layer's activations from its input before using them.
 */
import { headDim, type LlamaConfig } from "./config.js";
import type { Arena, Backend, DType, Tensor } from "./kernels.js";

export interface LayerActivations {
  /** Residual stream entering the layer (input of the first RMSNorm). */
  resid: Tensor;
  ln1: Tensor;
  rstd1: Tensor;
  q: Tensor; // [B,T,H,D], RoPE applied in place
  k: Tensor; // [B,T,Hkv,D]
  v: Tensor; // [B,T,Hkv,D]
  att: Tensor; // [B,T,H,D]
  lse: Tensor; // [B,H,T]
  /** Residual after attention (input of the second RMSNorm). */
  residMid: Tensor;
  ln2: Tensor;
  rstd2: Tensor;
  gate: Tensor;
  up: Tensor;
  act: Tensor;
  /** q, k, v, att seen as the [N, heads*D] matrices the projections read and write. */
  qFlat: Tensor;
  kFlat: Tensor;
  vFlat: Tensor;
  attFlat: Tensor;
}

export interface ActivationPlan {
  batch: number;
  seqLen: number;
  training: boolean;
  /** Training plan whose layers share one set of activations, rebuilt in backward. */
  recompute: boolean;
  arena: Arena;
  /** Frees the arena and the extra views made over it. */
  dispose(): void;
  ids: Tensor; // [N] i32
  targets: Tensor; // [N] i32
  layers: LayerActivations[];
  /** Residual after the last layer, the final norm's input. */
  residFinal: Tensor;
  lnf: Tensor;
  rstdf: Tensor;
  logits: Tensor; // [N,V]; holds dlogits after the loss in training
  losses: Tensor; // [N] f32
  /** Inference plans: the argmax of each logits row (greedy tokens), [N] i32. */
  predictions: Tensor | null;
  /** Output of o_proj / down_proj before the residual add; backward scratch [N,C]. */
  projOut: Tensor;
  // Backward scratch (training only).
  dResid: Tensor | null; // [N,C]
  dLn: Tensor | null; // [N,C]
  dq: Tensor | null;
  dk: Tensor | null;
  dv: Tensor | null;
  dAtt: Tensor | null;
  dAct: Tensor | null; // [N,I]
  dGate: Tensor | null;
  dUp: Tensor | null;
  dqFlat: Tensor | null;
  dkFlat: Tensor | null;
  dvFlat: Tensor | null;
  dAttFlat: Tensor | null;
}

export type ArenaSpec = { name: string; shape: number[]; dtype: DType };

/** Every activation buffer of a (batch, seqLen) plan: what `planActivations` allocates. */
export function activationSpecs(
  c: LlamaConfig,
  batch: number,
  seqLen: number,
  training: boolean,
  actDtype: DType,
  recompute = false,
): ArenaSpec[] {
  const N = batch * seqLen;
  const C = c.hiddenSize;
  const D = headDim(c);
  const H = c.numHeads;
  const Hkv = c.numKvHeads;
  const I = c.intermediateSize;
  const specs: { name: string; shape: number[]; dtype: DType }[] = [];
  const add = (name: string, shape: number[], dtype: DType = actDtype) =>
    specs.push({ name, shape, dtype });
  add("ids", [N], "i32");
  add("targets", [N], "i32");
  const sets = training && !recompute ? c.numLayers : 1;
  const residCount = training ? c.numLayers + 1 : 2;
  for (let r = 0; r < residCount; r++) add(`resid.${r}`, [N, C]);
  for (let l = 0; l < sets; l++) {
    add(`ln1.${l}`, [N, C]);
    add(`rstd1.${l}`, [N], "f32");
    add(`q.${l}`, [batch, seqLen, H, D]);
    add(`k.${l}`, [batch, seqLen, Hkv, D]);
    add(`v.${l}`, [batch, seqLen, Hkv, D]);
    add(`att.${l}`, [batch, seqLen, H, D]);
    add(`lse.${l}`, [batch, H, seqLen], "f32");
    add(`residMid.${l}`, [N, C]);
    add(`ln2.${l}`, [N, C]);
    add(`rstd2.${l}`, [N], "f32");
    add(`gate.${l}`, [N, I]);
    add(`up.${l}`, [N, I]);
    add(`act.${l}`, [N, I]);
  }
  add("lnf", [N, C]);
  add("rstdf", [N], "f32");
  add("logits", [N, c.vocabSize]);
  add("losses", [N], "f32");
  if (!training) add("predictions", [N], "i32");
  add("projOut", [N, C]);
  if (training) {
    add("dResid", [N, C]);
    add("dLn", [N, C]);
    add("dq", [batch, seqLen, H, D]);
    add("dk", [batch, seqLen, Hkv, D]);
    add("dv", [batch, seqLen, Hkv, D]);
    add("dAtt", [batch, seqLen, H, D]);
    add("dAct", [N, I]);
    add("dGate", [N, I]);
    add("dUp", [N, I]);
  }
  return specs;
}

export function planActivations(
  k: Backend,
  c: LlamaConfig,
  batch: number,
  seqLen: number,
  training: boolean,
  actDtype: DType,
  recompute = false,
): ActivationPlan {
  if (recompute && !training) throw new Error("recomputation applies to training plans only");
  const arena = k.arena(activationSpecs(c, batch, seqLen, training, actDtype, recompute));
  const g = (n: string) => arena.get(n);
  const layers: LayerActivations[] = [];
  const flats = new Map<string, Tensor>();
  const flat = (n: string) => {
    let f = flats.get(n);
    if (!f) {
      const t = g(n);
      const sh = t.shape;
      f = t.view(0, [sh[0]! * sh[1]!, sh[2]! * sh[3]!]);
      flats.set(n, f);
    }
    return f;
  };
  for (let l = 0; l < c.numLayers; l++) {
    const s = training && !recompute ? l : 0;
    layers.push({
      qFlat: flat(`q.${s}`),
      kFlat: flat(`k.${s}`),
      vFlat: flat(`v.${s}`),
      attFlat: flat(`att.${s}`),
      resid: g(`resid.${training ? l : l % 2}`),
      ln1: g(`ln1.${s}`),
      rstd1: g(`rstd1.${s}`),
      q: g(`q.${s}`),
      k: g(`k.${s}`),
      v: g(`v.${s}`),
      att: g(`att.${s}`),
      lse: g(`lse.${s}`),
      residMid: g(`residMid.${s}`),
      ln2: g(`ln2.${s}`),
      rstd2: g(`rstd2.${s}`),
      gate: g(`gate.${s}`),
      up: g(`up.${s}`),
      act: g(`act.${s}`),
    });
  }
  const opt = (n: string) => (training ? g(n) : null);
  return {
    batch,
    seqLen,
    training,
    recompute,
    arena,
    dispose() {
      for (const f of flats.values()) f.dispose();
      arena.dispose();
    },
    ids: g("ids"),
    targets: g("targets"),
    layers,
    residFinal: g(`resid.${training ? c.numLayers : c.numLayers % 2}`),
    lnf: g("lnf"),
    rstdf: g("rstdf"),
    logits: g("logits"),
    losses: g("losses"),
    predictions: training ? null : g("predictions"),
    projOut: g("projOut"),
    dResid: opt("dResid"),
    dLn: opt("dLn"),
    dq: opt("dq"),
    dk: opt("dk"),
    dv: opt("dv"),
    dAtt: opt("dAtt"),
    dAct: opt("dAct"),
    dGate: opt("dGate"),
    dUp: opt("dUp"),
    dqFlat: training ? flat("dq") : null,
    dkFlat: training ? flat("dk") : null,
    dvFlat: training ? flat("dv") : null,
    dAttFlat: training ? flat("dAtt") : null,
  };
}
