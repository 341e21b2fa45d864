/**
 * The paper's mixtures, one preset per stage (TinyLlama, arXiv 2401.02385, section 2 and
 * appendix A). Token budgets are the paper's round numbers:
 *  - v1.0: about 3T tokens (about 950B unique tokens seen about three times), SlimPajama
 *    without its GitHub subset and StarCoderData at 0.693584 / 0.306416 (the reference
 *    implementation's weights, "about 7:3" in the paper);
 *  - v1.1 basic pretraining: SlimPajama only, 1.5T tokens;
 *  - v1.1 continual pretraining, 350B tokens: base (SlimPajama only), Math&Code (SlimPajama
 *    75%, StarCoder Python+Jupyter 15%, Proof-Pile-2 10%), Chinese (SlimPajama 50%, SkyPile
 *    50%). The domain share rises linearly from 0 over the first 6B tokens, SlimPajama taking
 *    the rest, then holds;
 *  - v1.1 cooldown, 150B tokens: the final continual mixture, held from the first token.
 * Which StarCoder splits feed a stage is the data pipeline's business; the sampler only sees
 * source names.
 */
import type { MixtureSchedule } from "./schedule.js";

export const SOURCE_NAMES = ["slimpajama", "starcoder", "proof-pile-2", "skypile"] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];

export const PRESET_NAMES = [
  "v1.0",
  "v1.1-basic",
  "v1.1-continual-base",
  "v1.1-continual-math-code",
  "v1.1-continual-chinese",
  "v1.1-cooldown-base",
  "v1.1-cooldown-math-code",
  "v1.1-cooldown-chinese",
] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** Tokens over which the continual domain share ramps up from 0. */
export const CONTINUAL_RAMP_TOKENS = 6e9;
export const STAGE_TOKENS = {
  "v1.0": 3e12,
  basic: 1.5e12,
  continual: 350e9,
  cooldown: 150e9,
} as const;

const MATH_CODE = { slimpajama: 0.75, starcoder: 0.15, "proof-pile-2": 0.1 };
const CHINESE = { slimpajama: 0.5, skypile: 0.5 };
const SLIMPAJAMA_ONLY = { slimpajama: 1 };

/** Zero weight for every domain source, SlimPajama 1: the start of a continual ramp. */
function rampStart(target: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(target).map((k) => [k, k === "slimpajama" ? 1 : 0]));
}

function make(
  name: PresetName,
  description: string,
  totalTokens: number,
  points: MixtureSchedule["points"],
): MixtureSchedule {
  return { name, description, totalTokens, points };
}

const PRESETS: Record<PresetName, () => MixtureSchedule> = {
  "v1.0": () =>
    make(
      "v1.0",
      "TinyLlama v1.0: SlimPajama (no GitHub) and StarCoderData, about 7:3, 3T tokens",
      STAGE_TOKENS["v1.0"],
      [{ tokens: 0, weights: { slimpajama: 0.693584, starcoder: 0.306416 } }],
    ),
  "v1.1-basic": () =>
    make(
      "v1.1-basic",
      "TinyLlama v1.1 basic pretraining: SlimPajama only, 1.5T tokens",
      STAGE_TOKENS.basic,
      [{ tokens: 0, weights: SLIMPAJAMA_ONLY }],
    ),
  "v1.1-continual-base": () =>
    make(
      "v1.1-continual-base",
      "TinyLlama v1.1 continual pretraining, base: SlimPajama only, 350B tokens",
      STAGE_TOKENS.continual,
      [{ tokens: 0, weights: SLIMPAJAMA_ONLY }],
    ),
  "v1.1-continual-math-code": () =>
    make(
      "v1.1-continual-math-code",
      "TinyLlama v1.1 continual pretraining, Math&Code: SlimPajama 75%, StarCoder 15%, Proof-Pile-2 10% after a linear 6B-token ramp, 350B tokens",
      STAGE_TOKENS.continual,
      [
        { tokens: 0, weights: rampStart(MATH_CODE) },
        { tokens: CONTINUAL_RAMP_TOKENS, weights: MATH_CODE },
      ],
    ),
  "v1.1-continual-chinese": () =>
    make(
      "v1.1-continual-chinese",
      "TinyLlama v1.1 continual pretraining, Chinese: SlimPajama 50%, SkyPile 50% after a linear 6B-token ramp, 350B tokens",
      STAGE_TOKENS.continual,
      [
        { tokens: 0, weights: rampStart(CHINESE) },
        { tokens: CONTINUAL_RAMP_TOKENS, weights: CHINESE },
      ],
    ),
  "v1.1-cooldown-base": () =>
    make(
      "v1.1-cooldown-base",
      "TinyLlama v1.1 cooldown, base: SlimPajama only, 150B tokens",
      STAGE_TOKENS.cooldown,
      [{ tokens: 0, weights: SLIMPAJAMA_ONLY }],
    ),
  "v1.1-cooldown-math-code": () =>
    make(
      "v1.1-cooldown-math-code",
      "TinyLlama v1.1 cooldown, Math&Code: SlimPajama 75%, StarCoder 15%, Proof-Pile-2 10%, 150B tokens",
      STAGE_TOKENS.cooldown,
      [{ tokens: 0, weights: MATH_CODE }],
    ),
  "v1.1-cooldown-chinese": () =>
    make(
      "v1.1-cooldown-chinese",
      "TinyLlama v1.1 cooldown, Chinese: SlimPajama 50%, SkyPile 50%, 150B tokens",
      STAGE_TOKENS.cooldown,
      [{ tokens: 0, weights: CHINESE }],
    ),
};

/** The paper's steady-state shares per preset (after any ramp): what tests compare against. */
export const PAPER_SHARES: Record<PresetName, Record<string, number>> = {
  "v1.0": { slimpajama: 0.693584, starcoder: 0.306416 },
  "v1.1-basic": SLIMPAJAMA_ONLY,
  "v1.1-continual-base": SLIMPAJAMA_ONLY,
  "v1.1-continual-math-code": MATH_CODE,
  "v1.1-continual-chinese": CHINESE,
  "v1.1-cooldown-base": SLIMPAJAMA_ONLY,
  "v1.1-cooldown-math-code": MATH_CODE,
  "v1.1-cooldown-chinese": CHINESE,
};

export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}

/** A fresh copy of a preset schedule (plain data, safe to modify or serialise). */
export function preset(name: PresetName | string): MixtureSchedule {
  if (!isPresetName(name)) {
    throw new RangeError(
      `unknown mixture preset ${JSON.stringify(name)}; known presets: ${PRESET_NAMES.join(", ")}`,
    );
  }
  return JSON.parse(JSON.stringify(PRESETS[name]())) as MixtureSchedule;
}
