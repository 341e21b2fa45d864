/**
 * Learning-rate schedule defined on tokens consumed, not on steps or micro-iterations, so it
 * stays right when the global batch, the micro-batch or the device count changes (the
 * reference run indexed it by micro-iteration; see shared/reference/tinyllama.md). Linear
 * warmup from 0 to `maxLr` over `warmupTokens`, then a half cosine down to `minLr` at
 * `decayTokens`, then flat at `minLr`. One schedule spans every stage of a recipe, so the
 * cooldown stage continues the same curve with a larger batch.
 */

export interface CosineSchedule {
  maxLr: number;
  minLr: number;
  warmupTokens: number;
  /** Token count where the cosine reaches `minLr` (the end of the whole recipe). */
  decayTokens: number;
}

/** Throws on a schedule that would not decay (the reference run had min lr == max lr). */
export function validateSchedule(s: CosineSchedule): void {
  const finite = (k: keyof CosineSchedule) => {
    if (!Number.isFinite(s[k]) || s[k] < 0) {
      throw new Error(`lr schedule: ${k} must be a finite number >= 0, got ${s[k]}`);
    }
  };
  finite("maxLr");
  finite("minLr");
  finite("warmupTokens");
  finite("decayTokens");
  if (!(s.maxLr > 0)) throw new Error(`lr schedule: max lr must be > 0, got ${s.maxLr}`);
  if (!(s.minLr < s.maxLr)) {
    throw new Error(
      `lr schedule: min lr ${s.minLr} must be below max lr ${s.maxLr}, otherwise the cosine does not decay`,
    );
  }
  if (!(s.decayTokens > s.warmupTokens)) {
    throw new Error(
      `lr schedule: decay end (${s.decayTokens} tokens) must come after warmup (${s.warmupTokens} tokens)`,
    );
  }
}

export function learningRate(s: CosineSchedule, tokensSeen: number): number {
  if (tokensSeen < s.warmupTokens) return (s.maxLr * tokensSeen) / s.warmupTokens;
  if (tokensSeen >= s.decayTokens) return s.minLr;
  const ratio = (tokensSeen - s.warmupTokens) / (s.decayTokens - s.warmupTokens);
  return s.minLr + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (s.maxLr - s.minLr);
}

/** A short human-readable table of the schedule, printed before a run starts. */
export function describeSchedule(s: CosineSchedule, marks: { label: string; tokens: number }[]) {
  const fmt = (t: number) => formatTokens(t);
  const lines = [
    `lr schedule: warmup 0 -> ${s.maxLr.toExponential(2)} over ${fmt(s.warmupTokens)} tokens, ` +
      `cosine to ${s.minLr.toExponential(2)} at ${fmt(s.decayTokens)} tokens`,
  ];
  for (const m of marks) {
    lines.push(
      `  ${m.label.padEnd(22)} ${fmt(m.tokens).padStart(9)} tokens  lr ${learningRate(s, m.tokens).toExponential(3)}`,
    );
  }
  return lines.join("\n");
}

export function formatTokens(t: number): string {
  const a = Math.abs(t);
  if (a >= 1e12) return `${(t / 1e12).toFixed(3)}T`;
  if (a >= 1e9) return `${(t / 1e9).toFixed(3)}B`;
  if (a >= 1e6) return `${(t / 1e6).toFixed(3)}M`;
  if (a >= 1e3) return `${(t / 1e3).toFixed(1)}k`;
  return `${Math.round(t)}`;
}
