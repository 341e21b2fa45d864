/**
 * The pretraining recipes as data. v1.0 is the original single stage (3T tokens, 2M-token
 * batches, SlimPajama-without-GitHub : StarCoder about 7:3). v1.1 has three stages: basic
 * (SlimPajama only, 1.5T), continual (350B, variant base | math-code | chinese, the domain
 * share ramping up over the first 6B tokens) and cooldown (150B, same mixture, batch x4). One
 * cosine schedule spans a recipe: each stage owns a slice [startTokens, endTokens) of it.
 *
 * Mixtures (with the continual domain ramp) are @tinyllama/data/mixture presets.
 * `scale` shrinks every token budget (stage sizes, warmup, the domain ramp) by the same factor,
 * so the whole recipe keeps its shape at CPU size; batch sizes are not budgets and are set apart.
 */

export const STAGE_NAMES = ["v1.0", "basic", "continual", "cooldown"] as const;
export type StageName = (typeof STAGE_NAMES)[number];
export const VARIANTS = ["base", "math-code", "chinese"] as const;
export type Variant = (typeof VARIANTS)[number];

/** Sequences of 2048 tokens per optimizer step in the paper's setups. */
export const V10_BATCH_SEQUENCES = 1024; // 2,097,152 tokens
/** v1.1 used "about 1.8M tokens": 896 x 2048 = 1,835,008 (divisible by 1, 2, 4, 8, 16 GPUs). */
export const V11_BATCH_SEQUENCES = 896;
export const COOLDOWN_BATCH_MULTIPLIER = 4; // 1.8M -> 7.2M tokens
export const WARMUP_STEPS = 2000;
export const PAPER_SEQ_LEN = 2048;

export interface StageSpec {
  stage: StageName;
  variant: Variant | null;
  recipe: "v1.0" | "v1.1";
  /** Directory name of the stage inside a run directory. */
  dirName: string;
  /** The stage whose last checkpoint this one starts from, as a directory name. */
  previousDir: string | null;
  /** Token slice of the recipe-wide schedule this stage trains. */
  startTokens: number;
  endTokens: number;
  /** Global batch in sequences, before any user override. */
  batchSequences: number;
  /** The cooldown multiplies whatever base batch is in force. */
  batchMultiplier: number;
  /** Warmup and decay end of the recipe-wide cosine schedule, in tokens. */
  warmupTokens: number;
  decayTokens: number;
  /** The @tinyllama/data/mixture preset (weights, and the domain ramp of continual stages). */
  presetName: string;
}

const V11_TOKENS = { basic: 1.5e12, continual: 350e9, cooldown: 150e9 };
const V10_TOKENS = 3e12;

export function parseStage(name: string): StageName {
  if ((STAGE_NAMES as readonly string[]).includes(name)) return name as StageName;
  throw new Error(`unknown stage "${name}"; stages are ${STAGE_NAMES.join(", ")}`);
}

export function parseVariant(name: string): Variant {
  if ((VARIANTS as readonly string[]).includes(name)) return name as Variant;
  throw new Error(`unknown variant "${name}"; variants are ${VARIANTS.join(", ")}`);
}

export function stageSpec(stage: StageName, variant: Variant | null, scale = 1): StageSpec {
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new Error(`--scale must be a positive number, got ${scale}`);
  }
  if (variant !== null && (stage === "v1.0" || stage === "basic")) {
    throw new Error(
      `--variant applies to the continual and cooldown stages only, not to "${stage}"`,
    );
  }
  if (stage === "v1.0") {
    const batch = V10_BATCH_SEQUENCES;
    return {
      stage,
      variant: null,
      recipe: "v1.0",
      dirName: "v1.0",
      previousDir: null,
      startTokens: 0,
      endTokens: V10_TOKENS * scale,
      batchSequences: batch,
      batchMultiplier: 1,
      warmupTokens: WARMUP_STEPS * batch * PAPER_SEQ_LEN * scale,
      decayTokens: V10_TOKENS * scale,
      presetName: "v1.0",
    };
  }
  const v: Variant = variant ?? "base";
  const t = V11_TOKENS;
  const total = t.basic + t.continual + t.cooldown;
  const common = {
    recipe: "v1.1" as const,
    batchSequences: V11_BATCH_SEQUENCES,
    warmupTokens: WARMUP_STEPS * V11_BATCH_SEQUENCES * PAPER_SEQ_LEN * scale,
    decayTokens: total * scale,
  };
  if (stage === "basic") {
    return {
      ...common,
      stage,
      variant: null,
      dirName: "basic",
      previousDir: null,
      startTokens: 0,
      endTokens: t.basic * scale,
      batchMultiplier: 1,
      presetName: "v1.1-basic",
    };
  }
  if (stage === "continual") {
    return {
      ...common,
      stage,
      variant: v,
      dirName: `continual-${v}`,
      previousDir: "basic",
      startTokens: t.basic * scale,
      endTokens: (t.basic + t.continual) * scale,
      batchMultiplier: 1,
      presetName: `v1.1-continual-${v}`,
    };
  }
  return {
    ...common,
    stage,
    variant: v,
    dirName: `cooldown-${v}`,
    previousDir: `continual-${v}`,
    startTokens: (t.basic + t.continual) * scale,
    endTokens: total * scale,
    batchMultiplier: COOLDOWN_BATCH_MULTIPLIER,
    presetName: `v1.1-cooldown-${v}`,
  };
}
