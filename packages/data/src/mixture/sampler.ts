/**
 * MixtureSampler: decides, block by block, which source the next training block comes from,
 * following a schedule of weights over tokens consumed.
 *
 * One global stream. Global block g (tokens [g*B, (g+1)*B), B = blockTokens) gets a source
 * that depends only on the schedule, the seed and g. The stream is cut into rounds of W
 * blocks; each `next()` advances the global stream by one round and returns one block of it,
 * rank r taking offset (r + rotation) mod W where the rotation is a keyed hash of the round
 * (see roundRotation). So the union of what W ranks consume is exactly the global
 * prefix (the global mixture is exact for any W), all ranks hold identical state after the same
 * number of calls, and a state saved with W ranks restores under any other W and continues the
 * same global stream from the same global position.
 *
 * Modes:
 *  - "low-discrepancy" (default): earliest-deadline-first on the integral of the schedule.
 *    Let E_s(n) = (1/B) * integral over [0, nB] of w_s, the expected block count of source s
 *    after n blocks, and C_s(n) the realised count. Guarantee, for every n and s, including
 *    during ramps and for any piecewise-linear schedule:
 *        E_s(n) - 1 < C_s(n) < E_s(n) + 1.
 *    (For constant weights p_s this is |C_s(n) - n p_s| < 1 for every prefix.) Proof sketch:
 *    treat the j-th block of source s as a unit job that may run in slot n (the slot that
 *    produces block n) only once E_s(n+1) > j - 1 (release; running it then keeps
 *    C_s < E_s + 1 at every later time since E_s never decreases) and must run before slot
 *    D_j = min{t : E_s(t) >= j} (deadline; then C_s(t) >= #{j : E_s(t) >= j} = floor(E_s(t))
 *    > E_s(t) - 1). Every window is non-empty (E_s(D_j) >= j > j - 1). A feasible schedule
 *    exists by Hall's condition on intervals: the jobs of s whose windows lie in slots [a, b)
 *    have j in [E_s(a) + 1, E_s(b)], at most E_s(b) - E_s(a) of them, and summing over s gives
 *    at most b - a since the weights sum to 1. For unit jobs with integer release times and
 *    deadlines on one machine, earliest-deadline-first meets every deadline whenever any
 *    schedule does (exchange argument: swap an earlier-deadline job into the slot EDF would
 *    give it; no deadline moves later). EDF never idles: the released-job condition
 *    E_s(n+1) > C_s(n) holds for some s because sum_s E_s(n+1) = n + 1 > n = sum_s C_s(n).
 *    The property tests check the bound for random schedules, ramps and world sizes.
 *  - "random": independent draws, block g takes source s with probability equal to the
 *    schedule's average weight over that block (as the reference implementation sampled),
 *    from a counter-based uniform u(seed, g): also a pure function of the seed and g.
 *
 * State is O(number of sources): the global position and each source's block count. The count
 * also numbers the blocks of each source (`sourceBlock`), which is what a per-source
 * SourceBlockOrder needs to pick the actual block, so no rank ever reads another's blocks.
 */
import { checkSeed, deriveKey, KeyedHash } from "./hash.js";
import { preset } from "./presets.js";
import { CompiledSchedule, checkSchedule, type MixtureSchedule, ownNumber } from "./schedule.js";

export type MixtureMode = "low-discrepancy" | "random";
export const MIXTURE_MODES: readonly MixtureMode[] = ["low-discrepancy", "random"];
export const MIXTURE_STATE_FORMAT = "tinyllama-mixture/1";
export const DEFAULT_BLOCK_TOKENS = 2048;

export interface RankOptions {
  /** This process's rank in [0, worldSize); default 0. */
  rank?: number;
  /** Number of data-parallel ranks sharing the global stream; default 1. */
  worldSize?: number;
}

export interface MixtureSamplerOptions extends RankOptions {
  /** A schedule (plain data) or a preset name such as "v1.1-continual-math-code". */
  schedule: MixtureSchedule | string;
  /** Non-negative safe integer or string; the whole global stream is a function of it. */
  seed: number | string;
  /** Training tokens per block (2048: a 2049-token packed block trains on 2048 positions). */
  blockTokens?: number;
  mode?: MixtureMode;
}

export interface MixturePick {
  source: string;
  /** 0-based index of this block among its source's blocks in the global stream. */
  sourceBlock: number;
  /** 0-based index of this block in the global stream (over all ranks). */
  globalBlock: number;
}

/** JSON-serialisable sampler state; embeds the schedule so restore needs nothing else. */
export interface MixtureState {
  format: typeof MIXTURE_STATE_FORMAT;
  mode: MixtureMode;
  seed: number | string;
  blockTokens: number;
  schedule: MixtureSchedule;
  /** Global blocks consumed (by all ranks together). */
  position: number;
  /** Global blocks consumed per source; sums to `position`. */
  counts: Record<string, number>;
}

export class MixtureStateError extends Error {
  override name = "MixtureStateError";
}

const DOMAIN_DRAW = 0x44524157; // "DRAW"
const DOMAIN_RANKS = 0x52414e4b; // "RANK"

export class MixtureSampler {
  readonly mode: MixtureMode;
  readonly seed: number | string;
  readonly blockTokens: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly compiled: CompiledSchedule;
  /** Source names in the order used internally (sorted). */
  readonly sources: readonly string[];
  private readonly drawHash: KeyedHash;
  private readonly rankHash: KeyedHash;
  private readonly counts: Float64Array;
  /** Low-discrepancy: deadline (a global block position) of each source's next block. */
  private readonly deadlines: Float64Array;
  /** Random mode: E_s(position), to get each block's average weight by difference. */
  private readonly expectedAtPosition: Float64Array;
  private readonly scratch: Float64Array;
  /** A deep-frozen copy of the schedule, shared by every state() (called once per block). */
  private readonly frozenSchedule: MixtureSchedule;
  private globalPosition = 0;
  private pickedGlobalBlock = 0;
  private pickedSourceBlock = 0;
  /** Segment of the schedule holding token (position + 1) * B. */
  private segment = 0;

  constructor(options: MixtureSamplerOptions) {
    const where = "MixtureSampler";
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`${where}: expected an options object { schedule, seed, ... }`);
    }
    const schedule =
      typeof options.schedule === "string"
        ? preset(options.schedule)
        : checkSchedule(options.schedule);
    this.seed = checkSeed(options.seed, where);
    this.blockTokens = options.blockTokens ?? DEFAULT_BLOCK_TOKENS;
    if (!Number.isSafeInteger(this.blockTokens) || this.blockTokens < 1) {
      throw new RangeError(
        `${where}: blockTokens must be a positive integer, got ${options.blockTokens}`,
      );
    }
    this.mode = options.mode ?? "low-discrepancy";
    if (!MIXTURE_MODES.includes(this.mode)) {
      throw new RangeError(
        `${where}: mode must be one of ${MIXTURE_MODES.join(", ")}, got ${JSON.stringify(options.mode)}`,
      );
    }
    [this.rank, this.worldSize] = checkRank(options, where);
    this.frozenSchedule = deepFreeze(JSON.parse(JSON.stringify(schedule)) as MixtureSchedule);
    this.compiled = new CompiledSchedule(this.frozenSchedule);
    this.sources = this.compiled.sources;
    const K = this.sources.length;
    const key = deriveKey(this.seed, "mixture");
    this.drawHash = new KeyedHash(key, DOMAIN_DRAW);
    this.rankHash = new KeyedHash(key, DOMAIN_RANKS);
    this.counts = new Float64Array(K);
    this.deadlines = new Float64Array(K);
    this.expectedAtPosition = new Float64Array(K);
    this.scratch = new Float64Array(K);
    this.reset(0);
  }

  /** Restores a saved state in O(sources): no replay. Rank and world size may differ. */
  static restore(state: MixtureState, options: RankOptions = {}): MixtureSampler {
    const s = checkState(state);
    const sampler = new MixtureSampler({
      schedule: s.schedule,
      seed: s.seed,
      blockTokens: s.blockTokens,
      mode: s.mode,
      ...(options.rank !== undefined ? { rank: options.rank } : {}),
      ...(options.worldSize !== undefined ? { worldSize: options.worldSize } : {}),
    });
    const names = new Set(sampler.sources);
    for (const name of Object.keys(s.counts)) {
      if (!names.has(name)) {
        throw new MixtureStateError(
          `mixture state: counts name source "${name}" that the schedule does not have`,
        );
      }
    }
    sampler.sources.forEach((name, i) => {
      sampler.counts[i] = ownNumber(s.counts, name);
    });
    sampler.reset(s.position);
    return sampler;
  }

  /** Source of this rank's next block. */
  next(): string {
    return this.sources[this.advanceRound()]!;
  }

  /** This rank's next block with its numbering in the global stream and in its source. */
  nextBlock(): MixturePick {
    const s = this.advanceRound();
    return {
      source: this.sources[s]!,
      sourceBlock: this.pickedSourceBlock,
      globalBlock: this.pickedGlobalBlock,
    };
  }

  /** Runs one round of W global blocks; returns this rank's source index and records its numbers. */
  private advanceRound(): number {
    if (this.worldSize === 1) {
      this.pickedGlobalBlock = this.globalPosition;
      const s = this.step();
      this.pickedSourceBlock = this.counts[s]! - 1;
      return s;
    }
    const mineAt = (this.rank + this.roundRotation(this.globalPosition)) % this.worldSize;
    let mine = 0;
    for (let offset = 0; offset < this.worldSize; offset++) {
      const globalBlock = this.globalPosition;
      const s = this.step();
      if (offset === mineAt) {
        mine = s;
        this.pickedGlobalBlock = globalBlock;
        this.pickedSourceBlock = this.counts[s]! - 1;
      }
    }
    return mine;
  }

  /**
   * Which block of a round each rank takes is rotated by a keyed offset per round. The global
   * stream and its exact mixture are unchanged, but the low-discrepancy sequence is nearly
   * periodic, and without the rotation a period that divides W would give each rank one fixed
   * slot of the pattern: at 50/50 and W = 2, rank 0 would read only SlimPajama and rank 1 only
   * SkyPile (harmless for the summed gradient, misleading for per-rank losses). With it, each
   * rank's expected share is the global share.
   */
  private roundRotation(roundStart: number): number {
    if (this.worldSize === 1) return 0;
    return this.rankHash.hash(roundStart, this.worldSize) % this.worldSize;
  }

  /** Global blocks consumed so far by all ranks (always a whole number of rounds). */
  get position(): number {
    return this.globalPosition;
  }

  /** Global tokens consumed so far by all ranks. */
  get tokens(): number {
    return this.globalPosition * this.blockTokens;
  }

  /** Normalised schedule weights at a token position. */
  weightsAt(tokens: number): Record<string, number> {
    return this.toRecord(this.compiled.weightsAt(tokens));
  }

  /** Global blocks consumed per source so far. */
  realisedBlocks(): Record<string, number> {
    return this.toRecord(this.counts);
  }

  /** Expected blocks per source after `blocks` global blocks (the integral of the schedule). */
  expectedBlocks(blocks = this.globalPosition): Record<string, number> {
    const integral = this.compiled.integralAt(blocks * this.blockTokens);
    return this.toRecord(integral.map((v) => v / this.blockTokens));
  }

  /**
   * The position as JSON-ready plain data. Its `schedule` is shared between calls and frozen;
   * everything else is fresh. Identical on every rank after the same number of `next()` calls.
   */
  state(): MixtureState {
    return {
      format: MIXTURE_STATE_FORMAT,
      mode: this.mode,
      seed: this.seed,
      blockTokens: this.blockTokens,
      schedule: this.frozenSchedule,
      position: this.globalPosition,
      counts: this.realisedBlocks(),
    };
  }

  private toRecord(values: ArrayLike<number>): Record<string, number> {
    const out: Record<string, number> = {};
    this.sources.forEach((name, i) => {
      out[name] = values[i]!;
    });
    return out;
  }

  /** E_s(n) in blocks, using `segment` when it holds token n * B. */
  private expected(s: number, n: number, segment: number): number {
    return this.compiled.integralIn(segment, s, n * this.blockTokens) / this.blockTokens;
  }

  private expectedAnywhere(s: number, n: number): number {
    return this.expected(s, n, this.compiled.segmentOf(n * this.blockTokens));
  }

  /** Sets the position (counts already set) and recomputes the derived per-source values. */
  private reset(position: number): void {
    this.globalPosition = position;
    this.segment = this.compiled.segmentOf((position + 1) * this.blockTokens);
    for (let s = 0; s < this.sources.length; s++) {
      this.deadlines[s] = this.deadlineOfNext(s);
      this.expectedAtPosition[s] = this.expectedAnywhere(s, position);
    }
  }

  /**
   * Deadline of source s's next block (number counts[s] + 1): the smallest integer t with
   * E_s(t) >= counts[s] + 1, or Infinity. The closed-form inverse gives a candidate; the
   * loops make it exact with respect to the same E_s the release test uses.
   */
  private deadlineOfNext(s: number): number {
    const need = this.counts[s]! + 1;
    const x = this.compiled.inverseIntegral(s, need * this.blockTokens);
    if (!Number.isFinite(x)) return Number.POSITIVE_INFINITY;
    let t = Math.ceil(x / this.blockTokens);
    // The closed form is off by at most a block or two of rounding; walk to the exact answer,
    // and if it is ever further off, gallop then bisect (never give up: a wrong deadline could
    // break the bound).
    let steps = 0;
    while (t > 0 && this.expectedAnywhere(s, t - 1) >= need) {
      t--;
      if (++steps > 8) return this.searchDeadline(s, need, 0, t);
    }
    steps = 0;
    while (this.expectedAnywhere(s, t) < need) {
      t++;
      if (++steps > 8) return this.searchDeadline(s, need, t, t);
    }
    return t;
  }

  /** Smallest t >= lo with E_s(t) >= need, by galloping from `from` then bisecting. */
  private searchDeadline(s: number, need: number, lo: number, from: number): number {
    let hi = Math.max(from, lo, 1);
    for (let span = 1; this.expectedAnywhere(s, hi) < need; span *= 2) {
      lo = hi + 1;
      hi += span;
      if (hi > Number.MAX_SAFE_INTEGER / this.blockTokens) return Number.POSITIVE_INFINITY;
    }
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.expectedAnywhere(s, mid) >= need) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Chooses the source of global block `globalPosition`, updates counts, returns its index. */
  private step(): number {
    const n = this.globalPosition;
    const end = (n + 1) * this.blockTokens;
    while (end >= this.compiled.segmentEnd(this.segment)) this.segment++;
    const K = this.sources.length;
    const next = this.scratch;
    for (let s = 0; s < K; s++) next[s] = this.expected(s, n + 1, this.segment);
    const chosen =
      this.mode === "random" ? this.pickRandom(n, next) : this.pickEarliestDeadline(next);
    this.counts[chosen]!++;
    if (this.mode === "low-discrepancy") this.deadlines[chosen] = this.deadlineOfNext(chosen);
    this.expectedAtPosition.set(next);
    this.globalPosition = n + 1;
    return chosen;
  }

  private pickEarliestDeadline(next: Float64Array): number {
    let best = -1;
    let bestDeadline = Number.POSITIVE_INFINITY;
    let bestLag = Number.NEGATIVE_INFINITY;
    let fallback = 0;
    let fallbackLag = Number.NEGATIVE_INFINITY;
    for (let s = 0; s < next.length; s++) {
      const lag = next[s]! - this.counts[s]!;
      if (lag > fallbackLag) {
        fallback = s;
        fallbackLag = lag;
      }
      if (lag <= 0) continue; // not released: running it would put C_s above E_s + 1
      const d = this.deadlines[s]!;
      if (best < 0 || d < bestDeadline || (d === bestDeadline && lag > bestLag)) {
        best = s;
        bestDeadline = d;
        bestLag = lag;
      }
    }
    // Some source is always released in exact arithmetic (sum of lags = 1); the fallback only
    // guards against rounding and still picks the largest lag.
    return best >= 0 ? best : fallback;
  }

  private pickRandom(n: number, next: Float64Array): number {
    let total = 0;
    for (let s = 0; s < next.length; s++)
      total += Math.max(0, next[s]! - this.expectedAtPosition[s]!);
    const target = this.drawHash.uniform(n) * total;
    let acc = 0;
    let last = 0;
    for (let s = 0; s < next.length; s++) {
      const w = Math.max(0, next[s]! - this.expectedAtPosition[s]!);
      if (w <= 0) continue;
      acc += w;
      last = s;
      if (target < acc) return s;
    }
    return last;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export function checkRank(options: RankOptions, where: string): [number, number] {
  const worldSize = options.worldSize ?? 1;
  const rank = options.rank ?? 0;
  if (!Number.isSafeInteger(worldSize) || worldSize < 1) {
    throw new RangeError(
      `${where}: worldSize must be a positive integer, got ${options.worldSize}`,
    );
  }
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new RangeError(
      `${where}: rank must be an integer in [0, ${worldSize}), got ${options.rank}`,
    );
  }
  return [rank, worldSize];
}

function checkState(raw: unknown): MixtureState {
  const fail = (what: string): never => {
    throw new MixtureStateError(`mixture state: ${what}`);
  };
  if (typeof raw !== "object" || raw === null)
    return fail("expected an object from MixtureSampler.state()");
  const s = raw as Partial<MixtureState>;
  if (s.format !== MIXTURE_STATE_FORMAT) {
    fail(`format is ${JSON.stringify(s.format)}, expected ${JSON.stringify(MIXTURE_STATE_FORMAT)}`);
  }
  if (!Number.isSafeInteger(s.position) || s.position! < 0)
    fail("position must be a non-negative integer");
  if (typeof s.counts !== "object" || s.counts === null) fail("counts missing");
  let sum = 0;
  for (const [name, c] of Object.entries(s.counts!)) {
    if (!Number.isSafeInteger(c) || c < 0) fail(`counts.${name} must be a non-negative integer`);
    sum += c;
  }
  if (sum !== s.position) fail(`counts sum to ${sum} but position is ${s.position}`);
  return s as MixtureState;
}
