/**
 * LlamaModel: the TinyLlama / Llama 2 decoder over the kernels API. Parameters live in one arena
 * under Hugging Face names (the order of `parameterSpecs`); activations in a planned arena per
 * (batch, seqLen) shape. Forward-only scoring is the public surface eval uses; the training
 * loop (train/trainer.ts) adds gradients, optimizer state and backward through `backward()`.
 *
 * Data flow per layer (N = batch * seqLen rows):
 *   ln1 = rmsnorm(resid); q,k,v = ln1 Wq^T, Wk^T, Wv^T; rope(q,k); att = attention(q,k,v)
 *   residMid = resid + att Wo^T;  ln2 = rmsnorm(residMid)        (fused residual + norm)
 *   act = silu(ln2 Wg^T) * (ln2 Wu^T); next resid = residMid + act Wd^T (fused with next norm)
 */
import { headDim, type LlamaConfig, parameterSpecs, validateConfig } from "./config.js";
import type {
  Arena,
  ArenaEntry,
  ArenaLayout,
  Backend,
  DeviceName,
  DType,
  Tensor,
} from "./kernels.js";
import { loadKernels, planArena } from "./kernels.js";
import { type ActivationPlan, planActivations } from "./plan.js";

export interface LlamaParams {
  embed: Tensor;
  layers: {
    inNorm: Tensor;
    wq: Tensor;
    wk: Tensor;
    wv: Tensor;
    wo: Tensor;
    postNorm: Tensor;
    wGate: Tensor;
    wUp: Tensor;
    wDown: Tensor;
  }[];
  finalNorm: Tensor;
  lmHead: Tensor;
}

/** Builds named views over an arena that holds one tensor per parameter spec. */
export function bindParams(c: LlamaConfig, arena: Arena): LlamaParams {
  const g = (n: string) => arena.get(n);
  const layers = [];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    layers.push({
      inNorm: g(`${p}.input_layernorm.weight`),
      wq: g(`${p}.self_attn.q_proj.weight`),
      wk: g(`${p}.self_attn.k_proj.weight`),
      wv: g(`${p}.self_attn.v_proj.weight`),
      wo: g(`${p}.self_attn.o_proj.weight`),
      postNorm: g(`${p}.post_attention_layernorm.weight`),
      wGate: g(`${p}.mlp.gate_proj.weight`),
      wUp: g(`${p}.mlp.up_proj.weight`),
      wDown: g(`${p}.mlp.down_proj.weight`),
    });
  }
  return {
    embed: g("model.embed_tokens.weight"),
    layers,
    finalNorm: g("model.norm.weight"),
    lmHead: g("lm_head.weight"),
  };
}

export interface LoadOptions {
  /** "auto" picks CUDA when the kernels find a GPU, else CPU. Default "auto". */
  device?: DeviceName;
  /** An already loaded backend (shared between models); overrides `device`. */
  backend?: Backend;
  /** Weights and activations dtype: default f32 on CPU, bf16 on CUDA (f32 on CUDA for exact comparisons). */
  computeDtype?: "f32" | "bf16";
}

/** Per-sequence scores from `scoreSequences`. */
export interface SequenceScores {
  /** logProbs[t] = log p(ids[t+1] | ids[0..t]); length ids.length - 1. */
  logProbs: Float32Array;
  /** greedy[t] = 1 when ids[t+1] is the argmax of the prediction at t. */
  greedy: Uint8Array;
}

export type TokenSequence = ArrayLike<number>;

/**
 * Inference plans (activations of one batch shape) a model keeps; older ones are disposed.
 * Two, so that alternating between two shapes (a full batch and the last, smaller one) does
 * not reallocate.
 */
export const INFERENCE_PLANS_KEPT = 2;

/** Name of the trailing entry that pads the parameter arena to the shard group (see below). */
export const PARAM_PADDING = "shard-padding";

/**
 * Sharded training keeps the parameters, in the compute dtype, in the flat layout of the f32
 * gradient arena (each tensor at its f32 arena offset, padded to a multiple of the shard group)
 * so one all-gather fills them. Where the parameter arena already has that layout (every tensor's
 * element offset the same in both arenas: no alignment gaps, as when every tensor is a multiple
 * of 128 values, e.g. every TinyLlama size), appending this many elements makes the arena that
 * buffer itself. Null where the layouts differ (a separate gather buffer is then needed); 0 when
 * no padding is needed.
 */
export function flatParamPadding(
  config: LlamaConfig,
  dtype: DType,
  shardGroupSize: number,
): number | null {
  const specs = parameterSpecs(config);
  const bytes = dtype === "f32" ? 4 : 2;
  const f32 = planArena(
    specs.map((s) => ({ name: s.name, shape: s.shape, dtype: "f32" as const })),
  );
  const own = planArena(specs.map((s) => ({ name: s.name, shape: s.shape, dtype })));
  for (const s of specs) {
    if ((own.offsets.get(s.name) ?? -1) / bytes !== (f32.offsets.get(s.name) ?? -2) / 4)
      return null;
  }
  const used = f32.bytes / 4;
  if (own.bytes / bytes !== used) return null;
  return Math.ceil(used / shardGroupSize) * shardGroupSize - used;
}

export class LlamaModel {
  readonly config: LlamaConfig;
  readonly backend: Backend;
  /** Parameters in the compute dtype (f32 on CPU, bf16 on CUDA). */
  readonly paramArena: Arena;
  /** Byte offsets of the parameter arena's entries (the arena's own plan). */
  readonly paramLayout: ArenaLayout;
  readonly params: LlamaParams;
  readonly paramDtype: DType;
  readonly actDtype: DType;
  private plans = new Map<string, ActivationPlan>();
  private disposed = false;

  /**
   * `computeDtype` defaults to f32 on CPU and bf16 on CUDA; bf16 on the CPU backend runs the
   * mixed-precision path (bf16 weights and activations, fp32 master weights) where tests can see it.
   */
  constructor(
    backend: Backend,
    config: LlamaConfig,
    opts: { computeDtype?: "f32" | "bf16"; shardGroupSize?: number } = {},
  ) {
    validateConfig(config);
    this.config = config;
    this.backend = backend;
    const dtype = opts.computeDtype ?? (backend.name === "cpu" ? "f32" : "bf16");
    this.paramDtype = dtype;
    this.actDtype = dtype;
    const entries: ArenaEntry[] = parameterSpecs(config).map((s) => ({
      name: s.name,
      shape: s.shape,
      dtype: this.paramDtype,
    }));
    // Sharded training: where the arena can be the all-gather buffer itself, pad it to the
    // shard group (see flatParamPadding) so ShardedTrainer needs no second copy of the weights.
    const padding = opts.shardGroupSize
      ? flatParamPadding(config, dtype, opts.shardGroupSize)
      : null;
    if (padding) entries.push({ name: PARAM_PADDING, shape: [padding], dtype });
    this.paramLayout = planArena(entries);
    this.paramArena = backend.arena(entries);
    if (padding) backend.fill(this.paramArena.get(PARAM_PADDING), 0);
    this.params = bindParams(config, this.paramArena);
  }

  /**
   * Loads weights from a directory holding `config.json` and safetensors under HF Llama names:
   * a checkpoint of this project, a run or stage directory (its newest checkpoint), or a
   * Hugging Face Llama model directory (single or sharded safetensors, F32/BF16/F16).
   */
  static async load(dir: string, opts: LoadOptions = {}): Promise<LlamaModel> {
    const { loadWeights } = await import("../checkpoint/hf.js");
    const backend = opts.backend ?? (await loadKernels(opts.device ?? "auto"));
    const weights = loadWeights(dir);
    const model = new LlamaModel(
      backend,
      weights.config,
      opts.computeDtype ? { computeDtype: opts.computeDtype } : {},
    );
    try {
      for (const spec of parameterSpecs(weights.config)) {
        model.setParam(spec.name, weights.read(spec.name));
      }
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  /** Copies host f32 data into one parameter (rounded to bf16 on CUDA). */
  setParam(name: string, data: Float32Array): void {
    this.assertLive();
    const dst = this.paramArena.get(name);
    if (data.length !== dst.numel) {
      throw new Error(`parameter ${name}: expected ${dst.numel} values, got ${data.length}`);
    }
    dst.copyFromHost(data);
  }

  getParam(name: string): Float32Array {
    this.assertLive();
    return this.paramArena.get(name).toFloat32();
  }

  /**
   * The activation plan for a shape, created once and reused. `recompute` (training only): keep
   * just each layer's input and rebuild the layer's other activations in backward, one extra
   * layer forward per layer for about 1/L of the activation memory.
   */
  plan(
    batch: number,
    seqLen: number,
    training: boolean,
    opts: { recompute?: boolean } = {},
  ): ActivationPlan {
    const recompute = opts.recompute ?? false;
    this.assertLive();
    if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(seqLen) || seqLen < 1) {
      throw new Error(`batch and seqLen must be positive integers, got ${batch} x ${seqLen}`);
    }
    if (seqLen > this.config.maxSeqLen) {
      throw new Error(
        `sequence length ${seqLen} exceeds the model's context ${this.config.maxSeqLen}`,
      );
    }
    const key = `${batch}x${seqLen}:${training ? "train" : "infer"}${recompute ? "-recompute" : ""}`;
    let p = this.plans.get(key);
    if (p) {
      this.plans.delete(key); // re-inserted below: the Map's order is least recently used first
    } else {
      if (!training) this.evictInferencePlans(INFERENCE_PLANS_KEPT - 1);
      p = planActivations(
        this.backend,
        this.config,
        batch,
        seqLen,
        training,
        this.actDtype,
        recompute,
      );
    }
    this.plans.set(key, p);
    return p;
  }

  /**
   * Disposes the least recently used inference plans until at most `keep` remain. Scoring
   * (eval) asks for a plan per padded batch shape, and windows come longest first, so each shape
   * serves a run of batches and is rarely asked for again; keeping them all would hold a
   * B x T x vocab logits buffer per shape. Training plans are never evicted.
   */
  private evictInferencePlans(keep: number): void {
    const inference = [...this.plans.entries()].filter(([, p]) => !p.training);
    for (const [key, p] of inference.slice(0, Math.max(0, inference.length - keep))) {
      p.dispose();
      this.plans.delete(key);
    }
  }

  /** Frees the activation plans (weights stay). */
  releasePlans(): void {
    for (const p of this.plans.values()) p.dispose();
    this.plans.clear();
  }

  /**
   * Forward pass over `plan.ids` into `plan.logits` (and per-row losses against
   * `plan.targets` when `withLoss`). In training plans with `computeGrad`, the logits buffer
   * is overwritten with dLoss/dlogits scaled by `dlossScale`.
   */
  forward(plan: ActivationPlan, withLoss: boolean, computeGrad = false, dlossScale = 1): void {
    const k = this.backend;
    const c = this.config;
    const P = this.params;
    const eps = c.rmsNormEps;
    const L = c.numLayers;
    const first = plan.layers[0]!;
    k.embeddingForward(first.resid, P.embed, plan.ids);
    k.rmsnormForward(first.ln1, first.rstd1, first.resid, P.layers[0]!.inNorm, eps);
    for (let l = 0; l < L; l++) {
      const a = plan.layers[l]!;
      const w = P.layers[l]!;
      this.layerActivations(plan, l);
      k.matmul(plan.projOut, a.act, w.wDown, { transB: true });
      const next = plan.layers[l + 1];
      if (next) {
        k.residualRmsnormForward(
          next.resid,
          next.ln1,
          next.rstd1,
          a.residMid,
          plan.projOut,
          P.layers[l + 1]!.inNorm,
          eps,
        );
      } else {
        k.residualRmsnormForward(
          plan.residFinal,
          plan.lnf,
          plan.rstdf,
          a.residMid,
          plan.projOut,
          P.finalNorm,
          eps,
        );
      }
    }
    k.matmul(plan.logits, plan.lnf, P.lmHead, { transB: true });
    if (withLoss) {
      k.crossEntropy(plan.losses, plan.logits, plan.targets, { computeGrad, dlossScale });
    }
  }

  /**
   * The greedy token of every row of `plan.logits` (after `forward`): torch.argmax, the first
   * maximum, computed on the device so that only N ids come back to the host. Inference plans.
   */
  greedyTokens(plan: ActivationPlan): Int32Array {
    if (!plan.predictions) throw new Error("greedyTokens needs an inference plan");
    this.backend.argmax(plan.predictions, plan.logits);
    return plan.predictions.toHost() as Int32Array;
  }

  /**
   * One layer's activations from its normalised input `ln1`, up to the MLP's `act` (what
   * backward reads; the down projection and the next residual are the caller's).
   */
  private layerActivations(plan: ActivationPlan, l: number): void {
    const k = this.backend;
    const eps = this.config.rmsNormEps;
    const rope = { base: this.config.ropeTheta };
    const a = plan.layers[l]!;
    const w = this.params.layers[l]!;
    k.matmul(a.qFlat, a.ln1, w.wq, { transB: true });
    k.matmul(a.kFlat, a.ln1, w.wk, { transB: true });
    k.matmul(a.vFlat, a.ln1, w.wv, { transB: true });
    k.ropeForward(a.q, a.q, rope);
    k.ropeForward(a.k, a.k, rope);
    k.attentionForward(a.att, a.lse, a.q, a.k, a.v, { causal: true });
    k.matmul(plan.projOut, a.attFlat, w.wo, { transB: true });
    k.residualRmsnormForward(a.residMid, a.ln2, a.rstd2, a.resid, plan.projOut, w.postNorm, eps);
    k.matmul(a.gate, a.ln2, w.wGate, { transB: true });
    k.matmul(a.up, a.ln2, w.wUp, { transB: true });
    k.swigluForward(a.act, a.gate, a.up);
  }

  /**
   * Recomputation: layer l's activations again from its kept input. The forward pass made `ln1`
   * with the previous layer's fused residual + norm, which normalises the rounded residual it
   * stores, so normalising that stored residual here gives the same bits.
   */
  private recomputeLayer(plan: ActivationPlan, l: number): void {
    const a = plan.layers[l]!;
    const w = this.params.layers[l]!;
    this.backend.rmsnormForward(a.ln1, a.rstd1, a.resid, w.inNorm, this.config.rmsNormEps);
    this.layerActivations(plan, l);
  }

  /**
   * Backward pass after `forward(plan, true, true, scale)`: accumulates every parameter's
   * gradient into `grads` (same layout as `params`, f32). Gradients are added, so micro-batches
   * accumulate: zero them once per optimizer step, or pass `overwrite` for the first
   * micro-batch, which makes every Linear weight's gradient be written instead of added (each
   * gets exactly one matmul per backward); the norms' and the embedding's gradients are still
   * added (their ops accumulate), so only those need zeroing (`accumulatedGrads`).
   * `onGradsReady` is told, as soon as they are issued, which gradients no later op of this
   * backward touches (head and final norm, each layer, the embedding): data parallelism starts
   * reducing them while the earlier layers' backward runs.
   */
  backward(
    plan: ActivationPlan,
    grads: LlamaParams,
    onGradsReady?: (done: readonly Tensor[]) => void,
    opts: { overwrite?: boolean } = {},
  ): void {
    if (!plan.training) throw new Error("backward needs a training activation plan");
    const k = this.backend;
    const c = this.config;
    const P = this.params;
    const rope = { base: c.ropeTheta };
    const dResid = plan.dResid!;
    const dLn = plan.dLn!;
    const dq = plan.dq!;
    const dk = plan.dk!;
    const dv = plan.dv!;
    const dAtt = plan.dAtt!;
    const dAct = plan.dAct!;
    const dGate = plan.dGate!;
    const dUp = plan.dUp!;
    const acc = { transA: true, accumulate: !opts.overwrite };
    const dlogits = plan.logits;
    k.matmul(grads.lmHead, dlogits, plan.lnf, acc);
    k.matmul(dLn, dlogits, P.lmHead);
    k.fill(dResid, 0);
    k.rmsnormBackward(dResid, grads.finalNorm, dLn, plan.residFinal, P.finalNorm, plan.rstdf);
    onGradsReady?.([grads.lmHead, grads.finalNorm]);
    for (let l = c.numLayers - 1; l >= 0; l--) {
      const a = plan.layers[l]!;
      const w = P.layers[l]!;
      const g = grads.layers[l]!;
      // the shared set still holds the last layer's activations from the forward pass
      if (plan.recompute && l < c.numLayers - 1) this.recomputeLayer(plan, l);
      // MLP: dResid is the gradient of the layer output = of the down projection output.
      k.matmul(g.wDown, dResid, a.act, acc);
      k.matmul(dAct, dResid, w.wDown);
      k.swigluBackward(dGate, dUp, dAct, a.gate, a.up);
      k.matmul(g.wGate, dGate, a.ln2, acc);
      k.matmul(g.wUp, dUp, a.ln2, acc);
      k.matmul(dLn, dGate, w.wGate);
      k.matmul(dLn, dUp, w.wUp, { accumulate: true });
      k.rmsnormBackward(dResid, g.postNorm, dLn, a.residMid, w.postNorm, a.rstd2);
      // Attention.
      k.matmul(g.wo, dResid, a.attFlat, acc);
      k.matmul(plan.dAttFlat!, dResid, w.wo);
      k.attentionBackward(dq, dk, dv, dAtt, a.q, a.k, a.v, a.att, a.lse, { causal: true });
      k.ropeBackward(dq, dq, rope);
      k.ropeBackward(dk, dk, rope);
      k.matmul(g.wq, plan.dqFlat!, a.ln1, acc);
      k.matmul(g.wk, plan.dkFlat!, a.ln1, acc);
      k.matmul(g.wv, plan.dvFlat!, a.ln1, acc);
      k.matmul(dLn, plan.dqFlat!, w.wq);
      k.matmul(dLn, plan.dkFlat!, w.wk, { accumulate: true });
      k.matmul(dLn, plan.dvFlat!, w.wv, { accumulate: true });
      k.rmsnormBackward(dResid, g.inNorm, dLn, a.resid, w.inNorm, a.rstd1);
      onGradsReady?.([g.wq, g.wk, g.wv, g.wo, g.wGate, g.wUp, g.wDown, g.inNorm, g.postNorm]);
    }
    k.embeddingBackward(grads.embed, dResid, plan.ids);
    onGradsReady?.([grads.embed]);
  }

  /** The gradients `backward` adds into even with `overwrite`: the norms' and the embedding's. */
  static accumulatedGrads(grads: LlamaParams): Tensor[] {
    return [grads.embed, grads.finalNorm, ...grads.layers.flatMap((g) => [g.inNorm, g.postNorm])];
  }

  /**
   * Logits for a batch of equal-length sequences: `ids` holds batch * seqLen token ids,
   * row-major; returns batch * seqLen * vocab floats.
   */
  logits(ids: Int32Array, batch: number, seqLen: number): Float32Array {
    const plan = this.plan(batch, seqLen, false);
    this.loadIds(plan.ids, ids, batch * seqLen);
    this.forward(plan, false);
    return plan.logits.toFloat32();
  }

  /**
   * Scores token sequences of any lengths (2..maxSeqLen): for every position, the
   * log-probability of the next token and whether it is the greedy choice. Sequences are
   * packed into batches of `batchSize` and right-padded; causal attention keeps padding from
   * affecting real positions. A batch's padded length is its longest rounded up to
   * `padMultiple` (default 8, as the eval's scorer: little padding, few distinct plans).
   */
  scoreSequences(
    sequences: TokenSequence[],
    opts: { batchSize?: number; padMultiple?: number } = {},
  ): SequenceScores[] {
    this.assertLive();
    const batchSize = opts.batchSize ?? 8;
    const padMultiple = opts.padMultiple ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    }
    if (!Number.isInteger(padMultiple) || padMultiple < 1) {
      throw new RangeError(`padMultiple must be a positive integer, got ${padMultiple}`);
    }
    const out: SequenceScores[] = [];
    const V = this.config.vocabSize;
    for (let s0 = 0; s0 < sequences.length; s0 += batchSize) {
      const group = sequences.slice(s0, s0 + batchSize);
      let T = 0;
      for (const [i, seq] of group.entries()) {
        if (seq.length < 2) {
          throw new Error(`sequence ${s0 + i} has ${seq.length} tokens; scoring needs at least 2`);
        }
        // Its first length - 1 tokens are the model's input: at most the context.
        if (seq.length - 1 > this.config.maxSeqLen) {
          throw new Error(
            `sequence ${s0 + i} has ${seq.length} tokens; the model's context is ${this.config.maxSeqLen} (at most ${this.config.maxSeqLen + 1} tokens to score)`,
          );
        }
        T = Math.max(T, seq.length - 1);
      }
      const Tp = Math.min(this.config.maxSeqLen, roundUp(T, padMultiple));
      const B = group.length;
      const ids = new Int32Array(B * Tp);
      const targets = new Int32Array(B * Tp);
      for (const [b, seq] of group.entries()) {
        for (let t = 0; t < seq.length - 1; t++) {
          ids[b * Tp + t] = checkToken(seq[t]!, V);
          targets[b * Tp + t] = checkToken(seq[t + 1]!, V);
        }
      }
      const plan = this.plan(B, Tp, false);
      this.loadIds(plan.ids, ids, B * Tp);
      this.loadIds(plan.targets, targets, B * Tp);
      this.forward(plan, false);
      const logits = plan.logits.toFloat32();
      for (const [b, seq] of group.entries()) {
        const n = seq.length - 1;
        const logProbs = new Float32Array(n);
        const greedy = new Uint8Array(n);
        for (let t = 0; t < n; t++) {
          const row = (b * Tp + t) * V;
          let max = Number.NEGATIVE_INFINITY;
          let arg = 0;
          for (let j = 0; j < V; j++) {
            const x = logits[row + j]!;
            if (x > max) {
              max = x;
              arg = j;
            }
          }
          let sum = 0;
          for (let j = 0; j < V; j++) sum += Math.exp(logits[row + j]! - max);
          const target = targets[b * Tp + t]!;
          logProbs[t] = logits[row + target]! - max - Math.log(sum);
          greedy[t] = arg === target ? 1 : 0;
        }
        out.push({ logProbs, greedy });
      }
    }
    return out;
  }

  loadIds(dst: Tensor, ids: Int32Array, n: number): void {
    if (ids.length !== n) throw new Error(`expected ${n} token ids, got ${ids.length}`);
    dst.copyFromHost(ids);
  }

  dispose(): void {
    if (this.disposed) return;
    this.releasePlans();
    this.paramArena.dispose();
    this.disposed = true;
  }

  /** Throws a clear error once the model is disposed (for code holding a model, e.g. KvDecoder). */
  assertLive(): void {
    if (this.disposed) throw new Error("LlamaModel used after dispose()");
  }
}

function roundUp(x: number, m: number): number {
  return Math.ceil(x / m) * m;
}

function checkToken(id: number, vocab: number): number {
  if (!Number.isInteger(id) || id < 0 || id >= vocab) {
    throw new Error(`token id ${id} is outside the vocabulary [0, ${vocab})`);
  }
  return id;
}

export { headDim };
