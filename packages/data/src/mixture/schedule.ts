/**
 * Mixture schedules: each source's weight as a piecewise-linear function of tokens consumed.
 *
 * A schedule is plain data (JSON): knots `{ tokens, weights }` in increasing token order. At
 * each knot the weights are normalised to sum to 1; between knots they are interpolated
 * linearly (so they still sum to 1); before the first knot and after the last they hold. A
 * constant mixture is one knot. A source missing from a knot has weight 0 there.
 *
 * `CompiledSchedule` adds what the samplers need: the exact integral of each weight (the
 * expected number of tokens a source has received by position x) and its inverse.
 */

export interface MixturePoint {
  /** Position in tokens consumed since the start of the stage. */
  tokens: number;
  /** Non-negative weights per source name; normalised to sum 1 at this knot. */
  weights: Record<string, number>;
}

export interface MixtureSchedule {
  /** Optional label, e.g. the preset key. */
  name?: string;
  description?: string;
  /** Token budget of the stage this schedule describes (used for reports and plots). */
  totalTokens: number;
  /** Knots in strictly increasing `tokens` order; at least one. */
  points: MixturePoint[];
}

export class ScheduleError extends Error {
  override name = "ScheduleError";
}

/**
 * A validated schedule with precomputed integrals. Source order is the sorted list of every
 * name that appears in any knot (code-unit order, so it does not depend on locale or on the
 * key order of the JSON).
 */
export class CompiledSchedule {
  readonly schedule: MixtureSchedule;
  readonly sources: readonly string[];
  readonly totalTokens: number;
  /** Knot positions (tokens), starting at 0. */
  private readonly xs: Float64Array;
  /** Normalised weights, knot-major: w[k * K + s]. */
  private readonly w: Float64Array;
  /** Integral of weight s over [0, xs[k]]: cum[k * K + s]. */
  private readonly cum: Float64Array;

  constructor(schedule: MixtureSchedule) {
    const checked = checkSchedule(schedule);
    this.schedule = checked;
    this.totalTokens = checked.totalTokens;
    const names = new Set<string>();
    for (const p of checked.points) for (const n of Object.keys(p.weights)) names.add(n);
    this.sources = [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const K = this.sources.length;
    // A first knot after 0 means "hold it from 0": add an explicit knot at 0.
    const points =
      checked.points[0]!.tokens > 0
        ? [{ tokens: 0, weights: checked.points[0]!.weights }, ...checked.points]
        : checked.points;
    const P = points.length;
    this.xs = new Float64Array(P);
    this.w = new Float64Array(P * K);
    this.cum = new Float64Array(P * K);
    points.forEach((p, k) => {
      this.xs[k] = p.tokens;
      // Own properties only (a source named "constructor" must not read Object.prototype's),
      // summed in `sources` order so the normalised weights, and with them the whole stream,
      // do not depend on the key order of the JSON.
      const raw = this.sources.map((name) => ownNumber(p.weights, name));
      let sum = 0;
      for (const v of raw) sum += v;
      raw.forEach((v, s) => {
        this.w[k * K + s] = v / sum;
      });
    });
    for (let k = 1; k < P; k++) {
      const len = this.xs[k]! - this.xs[k - 1]!;
      for (let s = 0; s < K; s++) {
        const trapezoid = (len * (this.w[(k - 1) * K + s]! + this.w[k * K + s]!)) / 2;
        this.cum[k * K + s] = this.cum[(k - 1) * K + s]! + trapezoid;
      }
    }
  }

  get knots(): number {
    return this.xs.length;
  }

  /** Index of the segment holding `tokens`: the last knot k with xs[k] <= tokens. */
  segmentOf(tokens: number): number {
    let lo = 0;
    let hi = this.xs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.xs[mid]! <= tokens) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Start of segment k (its knot's position). */
  segmentStart(k: number): number {
    return this.xs[k]!;
  }

  /** Start of segment k + 1 (Infinity for the last, constant, segment). */
  segmentEnd(k: number): number {
    return k + 1 < this.xs.length ? this.xs[k + 1]! : Number.POSITIVE_INFINITY;
  }

  /** Weight of source index s at `tokens`, with `k` = segmentOf(tokens). */
  weightIn(k: number, s: number, tokens: number): number {
    const K = this.sources.length;
    const a = this.w[k * K + s]!;
    if (k + 1 >= this.xs.length) return a;
    const b = this.w[(k + 1) * K + s]!;
    const t = (tokens - this.xs[k]!) / (this.xs[k + 1]! - this.xs[k]!);
    return a + (b - a) * t;
  }

  /** Integral of source s's weight over [0, tokens], with `k` = segmentOf(tokens). */
  integralIn(k: number, s: number, tokens: number): number {
    const K = this.sources.length;
    const d = tokens - this.xs[k]!;
    const a = this.w[k * K + s]!;
    const base = this.cum[k * K + s]!;
    if (k + 1 >= this.xs.length) return base + a * d;
    const b = this.w[(k + 1) * K + s]!;
    const len = this.xs[k + 1]! - this.xs[k]!;
    return base + a * d + ((b - a) * d * d) / (2 * len);
  }

  /** Normalised weights at a position, in `sources` order. */
  weightsAt(tokens: number): Float64Array {
    checkPosition(tokens);
    const k = this.segmentOf(tokens);
    return Float64Array.from(this.sources, (_, s) => this.weightIn(k, s, tokens));
  }

  /** Expected tokens per source over [0, tokens]: the integral of each weight. */
  integralAt(tokens: number): Float64Array {
    checkPosition(tokens);
    const k = this.segmentOf(tokens);
    return Float64Array.from(this.sources, (_, s) => this.integralIn(k, s, tokens));
  }

  /**
   * Smallest position x >= 0 with integral_s(x) >= target, or Infinity if source s never
   * accumulates that much (its weight drops to 0 for good). Exact up to rounding; callers
   * that need an integer boundary correct it with `integralIn`.
   */
  inverseIntegral(s: number, target: number): number {
    if (target <= 0) return 0;
    const K = this.sources.length;
    const P = this.xs.length;
    // First knot whose cumulative integral reaches the target.
    let lo = 0;
    let hi = P; // hi = P means "beyond the last knot"
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cum[mid * K + s]! >= target) hi = mid;
      else lo = mid + 1;
    }
    if (lo === 0) return 0;
    const k = lo - 1; // target lies in segment k (or the tail if k = P - 1)
    const r = target - this.cum[k * K + s]!;
    const a = this.w[k * K + s]!;
    if (k === P - 1) return a > 0 ? this.xs[k]! + r / a : Number.POSITIVE_INFINITY;
    const b = this.w[(k + 1) * K + s]!;
    const len = this.xs[k + 1]! - this.xs[k]!;
    // Solve a d + (b - a) d^2 / (2 len) = r for the root in [0, len], in the form that does not
    // cancel when b - a is tiny: d = 2r / (a + sqrt(a^2 + 2 (b - a) r / len)).
    const disc = Math.max(0, a * a + (2 * (b - a) * r) / len);
    const denom = a + Math.sqrt(disc);
    const d = denom > 0 ? (2 * r) / denom : len;
    return this.xs[k]! + Math.min(len, Math.max(0, d));
  }
}

/** record[name] if it is an own property, else 0. */
export function ownNumber(record: Record<string, number>, name: string): number {
  return Object.hasOwn(record, name) ? record[name]! : 0;
}

function checkPosition(tokens: number): void {
  if (!Number.isFinite(tokens) || tokens < 0) {
    throw new RangeError(`mixture: position must be a finite number of tokens >= 0, got ${tokens}`);
  }
}

/** Validates the shape and values of a schedule; throws ScheduleError naming what is wrong. */
export function checkSchedule(raw: unknown): MixtureSchedule {
  const fail = (what: string): never => {
    throw new ScheduleError(`invalid mixture schedule: ${what}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return fail("expected an object { totalTokens, points }");
  }
  const s = raw as Partial<MixtureSchedule>;
  if (typeof s.totalTokens !== "number" || !Number.isFinite(s.totalTokens) || s.totalTokens <= 0) {
    fail(`totalTokens must be a positive number, got ${show(s.totalTokens)}`);
  }
  if (!Array.isArray(s.points) || s.points.length === 0) fail("points must be a non-empty array");
  let previous = -1;
  s.points!.forEach((p, i) => {
    if (typeof p !== "object" || p === null) fail(`points[${i}] is not an object`);
    if (typeof p.tokens !== "number" || !Number.isFinite(p.tokens) || p.tokens < 0) {
      fail(`points[${i}].tokens must be a finite number >= 0, got ${show(p.tokens)}`);
    }
    if (p.tokens <= previous) {
      fail(`points[${i}].tokens (${p.tokens}) must be greater than points[${i - 1}].tokens`);
    }
    previous = p.tokens;
    if (typeof p.weights !== "object" || p.weights === null || Array.isArray(p.weights)) {
      fail(`points[${i}].weights must be an object { source: weight }`);
    }
    let sum = 0;
    for (const [name, v] of Object.entries(p.weights)) {
      if (name.length === 0) fail(`points[${i}].weights has an empty source name`);
      if (name === "__proto__")
        fail(`points[${i}].weights: "__proto__" is not a usable source name`);
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
        fail(`points[${i}].weights.${name} must be a finite number >= 0, got ${show(v)}`);
      }
      sum += v;
    }
    if (!(sum > 0)) fail(`points[${i}].weights must have a positive sum`);
  });
  if (s.name !== undefined && typeof s.name !== "string") fail("name must be a string");
  return s as MixtureSchedule;
}

/** A value for an error message: JSON, except numbers (JSON writes NaN and Infinity as null). */
function show(v: unknown): string {
  return typeof v === "number" ? String(v) : JSON.stringify(v);
}

/** A constant mixture over a stage: one knot at token 0. */
export function constantSchedule(
  weights: Record<string, number>,
  totalTokens: number,
  name?: string,
): MixtureSchedule {
  return checkSchedule({
    ...(name ? { name } : {}),
    totalTokens,
    points: [{ tokens: 0, weights }],
  });
}

/**
 * The same schedule with every token position (knots and budget) multiplied by `factor`:
 * a 0.001 scale turns the 350B continual stage into a 350M one with the same shape.
 */
export function scaleSchedule(schedule: MixtureSchedule, factor: number): MixtureSchedule {
  if (!(factor > 0) || !Number.isFinite(factor)) {
    throw new RangeError(`scaleSchedule: factor must be a positive number, got ${factor}`);
  }
  const s = checkSchedule(schedule);
  return {
    ...s,
    totalTokens: s.totalTokens * factor,
    points: s.points.map((p) => ({ tokens: p.tokens * factor, weights: { ...p.weights } })),
  };
}
