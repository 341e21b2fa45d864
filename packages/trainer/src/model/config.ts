/**
 * Model configurations. `tinyllama-1.1b` is the paper's model exactly; the small configs keep the
 * real Llama 2 vocabulary (32000) so they train on the same shards and their checkpoints load
 * in `transformers` unchanged, but are narrow and shallow enough to train on two CPU cores.
 */

export interface LlamaConfig {
  /** Registry name, e.g. "tinyllama-1.1b"; "custom" for configs read from a checkpoint. */
  name: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** Longest context the model is built for (RoPE tables, HF max_position_embeddings). */
  maxSeqLen: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Standard deviation of every Linear and Embedding at init. */
  initStd: number;
  /** Standard deviation of attention o_proj and MLP down_proj at init. */
  initStdResidual: number;
}

export function headDim(c: LlamaConfig): number {
  return c.hiddenSize / c.numHeads;
}

/** The reference initialisation: N(0, sqrt(2/(5*C))) and N(0, 1/sqrt(C)/L) for residual outputs. */
function referenceInit(hiddenSize: number, numLayers: number) {
  return {
    initStd: Math.sqrt(2 / (5 * hiddenSize)),
    initStdResidual: 1 / Math.sqrt(hiddenSize) / numLayers,
  };
}

function llama(
  name: string,
  shape: Omit<LlamaConfig, "name" | "initStd" | "initStdResidual" | "rmsNormEps" | "ropeTheta">,
): LlamaConfig {
  return {
    name,
    ...shape,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ...referenceInit(shape.hiddenSize, shape.numLayers),
  };
}

export const MODEL_CONFIGS: Readonly<Record<string, LlamaConfig>> = Object.freeze({
  "tinyllama-1.1b": llama("tinyllama-1.1b", {
    vocabSize: 32000,
    hiddenSize: 2048,
    intermediateSize: 5632,
    numLayers: 22,
    numHeads: 32,
    numKvHeads: 4,
    maxSeqLen: 2048,
  }),
  // About 4.2M parameters, 4.1M of them the two 32000-row embeddings: the default CPU model.
  "tinyllama-4m": llama("tinyllama-4m", {
    vocabSize: 32000,
    hiddenSize: 64,
    intermediateSize: 176,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    maxSeqLen: 2048,
  }),
  // About 18M parameters: a slower CPU model that still shows GQA with 8 query heads per group.
  "tinyllama-18m": llama("tinyllama-18m", {
    vocabSize: 32000,
    hiddenSize: 256,
    intermediateSize: 688,
    numLayers: 4,
    numHeads: 8,
    numKvHeads: 1,
    maxSeqLen: 2048,
  }),
  // About 2.1M parameters, 1 layer: for tests that must run in seconds.
  "tinyllama-test": llama("tinyllama-test", {
    vocabSize: 32000,
    hiddenSize: 32,
    intermediateSize: 88,
    numLayers: 1,
    numHeads: 4,
    numKvHeads: 2,
    maxSeqLen: 2048,
  }),
});

export function modelConfig(name: string): LlamaConfig {
  const c = MODEL_CONFIGS[name];
  if (!c) {
    throw new Error(
      `unknown model "${name}"; known models: ${Object.keys(MODEL_CONFIGS).join(", ")}`,
    );
  }
  return { ...c };
}

/** Checks a config is buildable; throws naming the first broken field. */
export function validateConfig(c: LlamaConfig): void {
  const positive: (keyof LlamaConfig)[] = [
    "vocabSize",
    "hiddenSize",
    "intermediateSize",
    "numLayers",
    "numHeads",
    "numKvHeads",
    "maxSeqLen",
  ];
  for (const k of positive) {
    const v = c[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      throw new Error(`model config "${c.name}": ${k} must be a positive integer, got ${v}`);
    }
  }
  if (c.hiddenSize % c.numHeads !== 0) {
    throw new Error(
      `model config "${c.name}": hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}`,
    );
  }
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new Error(
      `model config "${c.name}": numHeads ${c.numHeads} is not a multiple of numKvHeads ${c.numKvHeads}`,
    );
  }
  if (headDim(c) % 2 !== 0) {
    throw new Error(`model config "${c.name}": head dim ${headDim(c)} must be even for RoPE`);
  }
  if (!(c.rmsNormEps > 0) || !(c.ropeTheta > 0)) {
    throw new Error(`model config "${c.name}": rmsNormEps and ropeTheta must be positive`);
  }
}

/** One parameter tensor: HF name, shape, and its init standard deviation (0 = ones, for norms). */
export interface ParamSpec {
  name: string;
  shape: number[];
  initStd: number;
  /** RMSNorm weights start at 1. */
  initOnes: boolean;
}

/** Every parameter in the order they are stored, initialised and updated, under HF Llama names. */
export function parameterSpecs(c: LlamaConfig): ParamSpec[] {
  const d = headDim(c);
  const C = c.hiddenSize;
  const specs: ParamSpec[] = [];
  const lin = (name: string, shape: number[], std = c.initStd) =>
    specs.push({ name, shape, initStd: std, initOnes: false });
  const norm = (name: string) => specs.push({ name, shape: [C], initStd: 0, initOnes: true });
  lin("model.embed_tokens.weight", [c.vocabSize, C]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    norm(`${p}.input_layernorm.weight`);
    lin(`${p}.self_attn.q_proj.weight`, [c.numHeads * d, C]);
    lin(`${p}.self_attn.k_proj.weight`, [c.numKvHeads * d, C]);
    lin(`${p}.self_attn.v_proj.weight`, [c.numKvHeads * d, C]);
    lin(`${p}.self_attn.o_proj.weight`, [C, c.numHeads * d], c.initStdResidual);
    norm(`${p}.post_attention_layernorm.weight`);
    lin(`${p}.mlp.gate_proj.weight`, [c.intermediateSize, C]);
    lin(`${p}.mlp.up_proj.weight`, [c.intermediateSize, C]);
    lin(`${p}.mlp.down_proj.weight`, [C, c.intermediateSize], c.initStdResidual);
  }
  norm("model.norm.weight");
  lin("lm_head.weight", [c.vocabSize, C]);
  return specs;
}

export function parameterCount(c: LlamaConfig): number {
  let n = 0;
  for (const s of parameterSpecs(c)) n += s.shape.reduce((a, b) => a * b, 1);
  return n;
}

/** Training FLOPs per token (forward + backward), 6N + 6*L*C*T as in the PaLM/llm.c MFU formula. */
export function trainFlopsPerToken(c: LlamaConfig, seqLen: number): number {
  return 6 * parameterCount(c) + 6 * c.numLayers * c.hiddenSize * seqLen;
}

/**
 * Model FLOPs utilisation: achieved training FLOP/s over the peak of every device that produced
 * them. `tokensPerSec` is the whole job's rate, so the peak is one device's times `devices`
 * (without that, 4 GPUs at 50% each read as 200%).
 */
export function modelFlopsUtilization(
  tokensPerSec: number,
  flopsPerToken: number,
  peakFlopsPerDevice: number,
  devices: number,
): number {
  if (!(peakFlopsPerDevice > 0) || !Number.isInteger(devices) || devices < 1) {
    throw new Error(
      `MFU needs a positive peak and a whole number of devices, got ${peakFlopsPerDevice} and ${devices}`,
    );
  }
  return (tokensPerSec * flopsPerToken) / (peakFlopsPerDevice * devices);
}

/** The Hugging Face `config.json` for LlamaForCausalLM. */
export function toHfConfig(c: LlamaConfig): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: headDim(c),
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    hidden_act: "silu",
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    tie_word_embeddings: false,
    initializer_range: c.initStd,
    pretraining_tp: 1,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: "float32",
    dtype: "float32",
    use_cache: true,
    tinyllama_ts_model: c.name,
  };
}

function num(o: Record<string, unknown>, key: string, fallback?: number): number {
  const v = o[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new Error(`config.json: "${key}" must be a number, got ${JSON.stringify(o[key])}`);
  }
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The RoPE base of a config.json: transformers >= 5 writes it as `rope_parameters.rope_theta`
 * (with `rope_type`), earlier versions as top-level `rope_theta` plus `rope_scaling`. Any RoPE
 * type other than "default" (linear, dynamic, yarn, llama3, ...) is refused.
 */
function ropeThetaOf(o: Record<string, unknown>): number {
  const params = o.rope_parameters;
  for (const key of ["rope_parameters", "rope_scaling"]) {
    const v = o[key];
    if (v === undefined || v === null) continue;
    if (!isObject(v)) {
      throw new Error(`config.json: ${key} must be an object or null, got ${JSON.stringify(v)}`);
    }
    if (Object.values(v).some(isObject)) {
      throw new Error(`config.json: ${key} per layer type is not supported`);
    }
    const type = v.rope_type ?? v.type ?? "default";
    if (type !== "default") {
      throw new Error(
        `config.json: ${key} has rope_type ${JSON.stringify(type)}; RoPE scaling is not supported ` +
          '(only "default" RoPE with rope_theta)',
      );
    }
  }
  const nested = isObject(params) ? params.rope_theta : undefined;
  const top = o.rope_theta;
  if (nested !== undefined && nested !== null && top !== undefined && top !== null) {
    if (nested !== top) {
      throw new Error(
        `config.json: rope_theta ${JSON.stringify(top)} and rope_parameters.rope_theta ${JSON.stringify(nested)} differ`,
      );
    }
  }
  if (nested !== undefined && nested !== null) {
    if (typeof nested !== "number" || !Number.isFinite(nested)) {
      throw new Error(
        `config.json: "rope_parameters.rope_theta" must be a number, got ${JSON.stringify(nested)}`,
      );
    }
    return nested;
  }
  return num(o, "rope_theta", 10000);
}

/** Reads a Hugging Face Llama `config.json` (ours or any LlamaForCausalLM). */
export function fromHfConfig(o: Record<string, unknown>): LlamaConfig {
  const mt = o.model_type;
  if (mt !== undefined && mt !== "llama") {
    throw new Error(`config.json: model_type is "${String(mt)}", only "llama" is supported`);
  }
  if (o.tie_word_embeddings === true) {
    throw new Error(
      "config.json: tie_word_embeddings is true; tied embeddings are not supported (TinyLlama unties them)",
    );
  }
  // Fields that change the computation and that this model does not implement: refused, never
  // ignored (the weights would load and the logits silently differ from transformers').
  for (const key of ["attention_bias", "mlp_bias"]) {
    const v = o[key];
    if (v !== undefined && v !== null && v !== false) {
      throw new Error(
        `config.json: ${key} is ${JSON.stringify(v)}; biases are not supported (Llama has none)`,
      );
    }
  }
  const act = o.hidden_act;
  if (act !== undefined && act !== null && act !== "silu" && act !== "swish") {
    throw new Error(
      `config.json: hidden_act is ${JSON.stringify(act)}, only "silu" (SwiGLU) is supported`,
    );
  }
  const C = num(o, "hidden_size");
  const heads = num(o, "num_attention_heads");
  const layers = num(o, "num_hidden_layers");
  const hd = o.head_dim === undefined || o.head_dim === null ? C / heads : num(o, "head_dim");
  if (hd * heads !== C) {
    throw new Error(`config.json: head_dim ${hd} * heads ${heads} != hidden_size ${C}`);
  }
  const named = typeof o.tinyllama_ts_model === "string" ? o.tinyllama_ts_model : "custom";
  const cfg: LlamaConfig = {
    name: named,
    vocabSize: num(o, "vocab_size"),
    hiddenSize: C,
    intermediateSize: num(o, "intermediate_size"),
    numLayers: layers,
    numHeads: heads,
    numKvHeads: num(o, "num_key_value_heads", heads),
    maxSeqLen: num(o, "max_position_embeddings", 2048),
    rmsNormEps: num(o, "rms_norm_eps", 1e-6),
    ropeTheta: ropeThetaOf(o),
    ...referenceInit(C, layers),
  };
  validateConfig(cfg);
  return cfg;
}

/** Fields that must match for weights of one config to load into another (shapes, RoPE base, norm eps). */
export function sameArchitecture(a: LlamaConfig, b: LlamaConfig): string | null {
  const keys: (keyof LlamaConfig)[] = [
    "vocabSize",
    "hiddenSize",
    "intermediateSize",
    "numLayers",
    "numHeads",
    "numKvHeads",
  ];
  for (const k of keys) {
    if (a[k] !== b[k]) return `${k} ${String(a[k])} != ${String(b[k])}`;
  }
  // Not shapes, but the model computes differently with other values: weights trained with
  // another RoPE base or norm epsilon would silently be trained (and saved) under this config's.
  const numeric: [keyof LlamaConfig, string][] = [
    ["ropeTheta", "rope_theta"],
    ["rmsNormEps", "rms_norm_eps"],
  ];
  for (const [k, hf] of numeric) {
    if (a[k] !== b[k]) return `${k} (${hf}) ${String(a[k])} != ${String(b[k])}`;
  }
  return null;
}
