import { proofpile2 } from "./proofpile2.js";
import { skypile } from "./skypile.js";
import { slimpajama } from "./slimpajama.js";
import type { SourceDefinition } from "./source.js";
import { starcoderdata } from "./starcoderdata.js";

export type { SourceDefinition } from "./source.js";
export { proofpile2, skypile, slimpajama, starcoderdata };

/**
 * Registered corpora by name. The names are the mixture presets' source names and the output
 * directories under data/, so the trainer finds data/<source>/ for every source of a stage.
 */
export const SOURCES: Record<string, SourceDefinition> = Object.fromEntries(
  [slimpajama, starcoderdata, proofpile2, skypile].map((s) => [s.name, s]),
);

export function getSource(name: string): SourceDefinition {
  const s = SOURCES[name];
  if (!s) throw new Error(`unknown source "${name}" (known: ${Object.keys(SOURCES).join(", ")})`);
  return s;
}
