/**
 * KvDecoder: incremental forward passes of a LlamaModel over a key/value cache, for generation.
 *
 * Design. The cache holds, per layer, K and V for `slots` sequences of up to `maxLen` positions
 * in the attention kernel's own layout ([slot, position, kvHead, headDim]), so a sequence's first
 * L positions are one contiguous [1, L, Hkv, D] tensor and grouped-query attention reads the
 * 4 KV heads of TinyLlama directly (no copies per query head). A step takes one *segment* per
 * sequence (its new tokens and the position they start at): the dense work (projections, norms,
 * MLP) runs once over all new rows of all segments; RoPE, the cache write and attention run per
 * segment with that sequence's own positions. No sequence is ever padded, so batching cannot
 * change a sequence's result, and prompts of different lengths need no attention mask.
 *
 * Decoding steps (every segment one token: the generation loop after the prompt) take one
 * `decodeAttention` call per layer for all sequences: RoPE at each row's position, the cache
 * write and attention over that slot's keys in two kernel launches, whatever the batch. On the
 * CPU backend it gives the bits of the general path below (kernels' tests check this); on CUDA
 * it was checked on an H200 against the CPU backend (kernels' cross-backend suite) and against
 * transformers (tools/compare/generate: bf16 greedy tokens equal up to ties), and decodes a batch
 * of 32 at 4,554 tokens/s against 675 on the general path.
 *
 * Other steps (prompts, chunks) use the kernels' attention, which takes queries and keys of the
 * same length: the segment's queries are written into a [1, maxLen, H, D] scratch at their
 * positions and causal attention runs over the first pos+n rows; with a causal mask, row i only
 * reads query i and keys 0..i, so the rows before the segment (stale scratch) do not affect the
 * rows we keep. The price is attention work for pos+n query rows instead of n, once per prompt.
 *
 * Only the last row of each segment goes through the LM head: logits come back as [S, vocab].
 */
import { headDim } from "../model/config.js";
import type { Arena, Tensor } from "../model/kernels.js";
import type { LlamaModel } from "../model/llama.js";

/**
 * Whether one-token steps use the kernels' decodeAttention: yes on every backend (CPU: the
 * general path's bits; CUDA: checked on an H200, see the file comment) unless
 * TINYLLAMA_DECODE_ATTENTION=off, which keeps the general path (for comparisons and debugging).
 */
export function useDecodeKernel(_backend: string): boolean {
  const v = process.env.TINYLLAMA_DECODE_ATTENTION;
  if (v !== undefined && v !== "" && v !== "on" && v !== "off") {
    throw new Error(`TINYLLAMA_DECODE_ATTENTION must be "on" or "off", got "${v}"`);
  }
  return v !== "off";
}

export interface DecoderOptions {
  /** Sequences decoded together (cache slots). */
  slots: number;
  /** Longest sequence (prompt + generated tokens); at most the model's context. */
  maxLen: number;
  /** Most new tokens in one step across all segments (prefill chunk size). Default 512. */
  maxRows?: number;
  /** Allow maxLen beyond the model's context (positions past what it was trained on). */
  extendContext?: boolean;
}

/** New tokens of one sequence: `tokens` go at positions pos, pos+1, ... of cache slot `slot`. */
export interface Segment {
  slot: number;
  tokens: ArrayLike<number>;
  pos: number;
}

export class KvDecoder {
  readonly slots: number;
  readonly maxLen: number;
  readonly maxRows: number;
  private readonly model: LlamaModel;
  private readonly cache: Arena;
  private readonly scratch: Arena;
  private disposed = false;

  constructor(model: LlamaModel, opts: DecoderOptions) {
    model.assertLive();
    const c = model.config;
    const maxRows = opts.maxRows ?? 512;
    for (const [name, v] of [
      ["slots", opts.slots],
      ["maxLen", opts.maxLen],
      ["maxRows", maxRows],
    ] as const) {
      if (!Number.isInteger(v) || v < 1)
        throw new Error(`KvDecoder: ${name} must be a positive integer, got ${v}`);
    }
    if (opts.maxLen > c.maxSeqLen && !opts.extendContext) {
      throw new Error(
        `KvDecoder: maxLen ${opts.maxLen} exceeds the model's context ${c.maxSeqLen}`,
      );
    }
    this.model = model;
    this.slots = opts.slots;
    this.maxLen = opts.maxLen;
    this.maxRows = maxRows;
    const k = model.backend;
    const dt = model.actDtype;
    const D = headDim(c);
    const Hkv = c.numKvHeads;
    const cacheSpecs = [];
    for (let l = 0; l < c.numLayers; l++) {
      cacheSpecs.push({ name: `k.${l}`, shape: [opts.slots, opts.maxLen, Hkv, D], dtype: dt });
      cacheSpecs.push({ name: `v.${l}`, shape: [opts.slots, opts.maxLen, Hkv, D], dtype: dt });
    }
    this.cache = k.arena(cacheSpecs);
    try {
      this.scratch = this.scratchArena(opts.slots, opts.maxLen, maxRows);
    } catch (e) {
      // A device out of memory here must not leave the cache alive until a GC.
      this.cache.dispose();
      throw e;
    }
    // Stale query rows are read by the causal kernel only for rows we discard; keep them finite.
    k.fill(this.scratch.get("qFull"), 0);
  }

  /** The per-step buffers: up to `rows` new tokens, `slots` sequences of up to `maxLen`. */
  private scratchArena(slots: number, maxLen: number, R: number): Arena {
    const c = this.model.config;
    const k = this.model.backend;
    const dt = this.model.actDtype;
    const D = headDim(c);
    const H = c.numHeads;
    const Hkv = c.numKvHeads;
    const C = c.hiddenSize;
    const I = c.intermediateSize;
    return k.arena([
      { name: "ids", shape: [R], dtype: "i32" },
      { name: "residA", shape: [R, C], dtype: dt },
      { name: "residB", shape: [R, C], dtype: dt },
      { name: "residMid", shape: [R, C], dtype: dt },
      { name: "ln", shape: [R, C], dtype: dt },
      { name: "rstd", shape: [R], dtype: "f32" },
      { name: "q", shape: [R, H * D], dtype: dt },
      { name: "k", shape: [R, Hkv * D], dtype: dt },
      { name: "v", shape: [R, Hkv * D], dtype: dt },
      { name: "att", shape: [R, H * D], dtype: dt },
      { name: "proj", shape: [R, C], dtype: dt },
      { name: "gate", shape: [R, I], dtype: dt },
      { name: "up", shape: [R, I], dtype: dt },
      { name: "meta", shape: [2, slots], dtype: "i32" },
      { name: "qFull", shape: [1, maxLen, H, D], dtype: dt },
      { name: "outFull", shape: [1, maxLen, H, D], dtype: dt },
      { name: "lse", shape: [1, H, maxLen], dtype: "f32" },
      { name: "last", shape: [slots, C], dtype: dt },
      { name: "logits", shape: [slots, c.vocabSize], dtype: dt },
      { name: "greedy", shape: [slots], dtype: "i32" },
    ]);
  }

  /** Bytes of the K/V cache (2 x layers x slots x maxLen x kvHeads x headDim x dtype). */
  get cacheBytes(): number {
    return this.cache.bytes;
  }

  /**
   * Runs the new tokens of each segment through the model, appending their keys and values to
   * the cache, and returns the logits after each segment's last token as [S, vocab] (f32).
   * Positions before `pos` of a slot must have been filled by earlier steps.
   */
  step(segments: readonly Segment[]): Float32Array {
    return this.stepWith(segments, false) as Float32Array;
  }

  /**
   * As `step`, but returns only each segment's greedy next token (torch.argmax of its logits,
   * computed on the device): S ids come back to the host instead of S x vocab logits.
   */
  stepGreedy(segments: readonly Segment[]): Int32Array {
    return this.stepWith(segments, true) as Int32Array;
  }

  private stepWith(segments: readonly Segment[], greedy: boolean): Float32Array | Int32Array {
    if (this.disposed) throw new Error("KvDecoder used after dispose()");
    this.model.assertLive();
    const c = this.model.config;
    const V = c.vocabSize;
    const seen = new Set<number>();
    let rows = 0;
    for (const s of segments) {
      if (!Number.isInteger(s.slot) || s.slot < 0 || s.slot >= this.slots) {
        throw new Error(`KvDecoder.step: slot ${s.slot} is outside [0, ${this.slots})`);
      }
      if (seen.has(s.slot)) throw new Error(`KvDecoder.step: slot ${s.slot} appears twice`);
      seen.add(s.slot);
      if (s.tokens.length < 1) throw new Error(`KvDecoder.step: slot ${s.slot} has no tokens`);
      if (!Number.isInteger(s.pos) || s.pos < 0 || s.pos + s.tokens.length > this.maxLen) {
        throw new Error(
          `KvDecoder.step: slot ${s.slot} would fill positions ${s.pos}..${s.pos + s.tokens.length - 1}, past maxLen ${this.maxLen}`,
        );
      }
      rows += s.tokens.length;
    }
    if (segments.length === 0) return greedy ? new Int32Array(0) : new Float32Array(0);
    if (rows > this.maxRows) {
      throw new Error(
        `KvDecoder.step: ${rows} new tokens exceed maxRows ${this.maxRows}; split the step`,
      );
    }
    const ids = new Int32Array(rows);
    let r = 0;
    for (const s of segments) {
      for (let i = 0; i < s.tokens.length; i++) {
        const id = s.tokens[i]!;
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new Error(`token id ${id} is outside the vocabulary [0, ${V})`);
        }
        ids[r++] = id;
      }
    }
    const views: Tensor[] = [];
    const view = (t: Tensor, offset: number, shape: number[]) => {
      const v = t.view(offset, shape);
      views.push(v);
      return v;
    };
    try {
      const logits = this.run(segments, ids, view);
      if (!greedy) return logits.toFloat32();
      const tokens = view(this.scratch.get("greedy"), 0, [segments.length]);
      this.model.backend.argmax(tokens, logits);
      return tokens.toHost() as Int32Array;
    } finally {
      for (const v of views) v.dispose();
    }
  }

  private run(
    segments: readonly Segment[],
    ids: Int32Array,
    view: (t: Tensor, offset: number, shape: number[]) => Tensor,
  ): Tensor {
    const k = this.model.backend;
    const c = this.model.config;
    const P = this.model.params;
    const D = headDim(c);
    const H = c.numHeads;
    const Hkv = c.numKvHeads;
    const C = c.hiddenSize;
    const I = c.intermediateSize;
    const eps = c.rmsNormEps;
    const n = ids.length;
    const S = segments.length;
    const g = (name: string) => this.scratch.get(name);
    const rowsOf = (name: string, width: number) => view(g(name), 0, [n, width]);
    const idsT = view(g("ids"), 0, [n]);
    idsT.copyFromHost(ids);
    const resid = [rowsOf("residA", C), rowsOf("residB", C)];
    const residMid = rowsOf("residMid", C);
    const ln = rowsOf("ln", C);
    const rstd = view(g("rstd"), 0, [n]);
    const q = rowsOf("q", H * D);
    const kNew = rowsOf("k", Hkv * D);
    const vNew = rowsOf("v", Hkv * D);
    const att = rowsOf("att", H * D);
    const proj = rowsOf("proj", C);
    const gate = rowsOf("gate", I);
    const up = rowsOf("up", I);
    const qFull = g("qFull");
    const outFull = g("outFull");
    const lse = g("lse");
    // Decoding step: one token per segment, one fused call per layer (see the file comment).
    const decoding = n === S && useDecodeKernel(k.name);
    // Per-segment views that do not depend on the layer (general path only).
    const segViews = [];
    let r0 = 0;
    for (const s of decoding ? [] : segments) {
      const m = s.tokens.length;
      const L = s.pos + m;
      segViews.push({
        s,
        q: view(g("q"), r0 * H * D, [1, m, H, D]),
        k: view(g("k"), r0 * Hkv * D, [1, m, Hkv, D]),
        v: view(g("v"), r0 * Hkv * D, [1, m, Hkv, D]),
        att: view(g("att"), r0 * H * D, [1, m, H, D]),
        qDst: view(qFull, s.pos * H * D, [1, m, H, D]),
        outSrc: view(outFull, s.pos * H * D, [1, m, H, D]),
        qAll: view(qFull, 0, [1, L, H, D]),
        outAll: view(outFull, 0, [1, L, H, D]),
        lse: view(lse, 0, [1, H, L]),
        lastRow: r0 + m - 1,
      });
      r0 += m;
    }
    const rope = { base: c.ropeTheta };
    let meta: Tensor | null = null;
    if (decoding) {
      const m = new Int32Array(2 * S);
      for (const [i, seg] of segments.entries()) {
        m[i] = seg.slot;
        m[S + i] = seg.pos;
      }
      meta = view(g("meta"), 0, [2, S]);
      meta.copyFromHost(m);
    }
    const qRows = decoding ? view(g("q"), 0, [S, H, D]) : null;
    const kRows = decoding ? view(g("k"), 0, [S, Hkv, D]) : null;
    const vRows = decoding ? view(g("v"), 0, [S, Hkv, D]) : null;
    const attRows = decoding ? view(g("att"), 0, [S, H, D]) : null;
    k.embeddingForward(resid[0]!, P.embed, idsT);
    k.rmsnormForward(ln, rstd, resid[0]!, P.layers[0]!.inNorm, eps);
    for (let l = 0; l < c.numLayers; l++) {
      const w = P.layers[l]!;
      const residIn = resid[l % 2]!;
      const residOut = resid[(l + 1) % 2]!;
      k.matmul(q, ln, w.wq, { transB: true });
      k.matmul(kNew, ln, w.wk, { transB: true });
      k.matmul(vNew, ln, w.wv, { transB: true });
      const kc = this.cache.get(`k.${l}`);
      const vc = this.cache.get(`v.${l}`);
      if (meta) {
        k.decodeAttention(attRows!, qRows!, kRows!, vRows!, kc, vc, meta, {
          ropeBase: c.ropeTheta,
        });
      }
      for (const sv of segViews) {
        const { s } = sv;
        const m = s.tokens.length;
        const L = s.pos + m;
        const base = s.slot * this.maxLen * Hkv * D;
        k.ropeForward(sv.q, sv.q, { ...rope, positionOffset: s.pos });
        k.ropeForward(sv.k, sv.k, { ...rope, positionOffset: s.pos });
        k.copy(view(kc, base + s.pos * Hkv * D, [1, m, Hkv, D]), sv.k);
        k.copy(view(vc, base + s.pos * Hkv * D, [1, m, Hkv, D]), sv.v);
        k.copy(sv.qDst, sv.q);
        k.attentionForward(
          sv.outAll,
          sv.lse,
          sv.qAll,
          view(kc, base, [1, L, Hkv, D]),
          view(vc, base, [1, L, Hkv, D]),
          { causal: true },
        );
        k.copy(sv.att, sv.outSrc);
      }
      k.matmul(proj, att, w.wo, { transB: true });
      k.residualRmsnormForward(residMid, ln, rstd, residIn, proj, w.postNorm, eps);
      k.matmul(gate, ln, w.wGate, { transB: true });
      k.matmul(up, ln, w.wUp, { transB: true });
      k.swigluForward(gate, gate, up);
      k.matmul(proj, gate, w.wDown, { transB: true });
      const nextNorm = l + 1 < c.numLayers ? P.layers[l + 1]!.inNorm : P.finalNorm;
      k.residualRmsnormForward(residOut, ln, rstd, residMid, proj, nextNorm, eps);
    }
    // `ln` now holds the final norm's output; only each segment's last row needs logits.
    // (decoding: the S rows are already each segment's last row)
    const last = g("last");
    for (const [i, sv] of segViews.entries()) {
      k.copy(view(last, i * C, [1, C]), view(g("ln"), sv.lastRow * C, [1, C]));
    }
    const logits = view(g("logits"), 0, [S, c.vocabSize]);
    k.matmul(logits, view(meta ? g("ln") : last, 0, [S, C]), P.lmHead, { transB: true });
    return logits;
  }

  dispose(): void {
    if (this.disposed) return;
    this.cache.dispose();
    this.scratch.dispose();
    this.disposed = true;
  }
}
