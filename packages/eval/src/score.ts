/**
 * The harness's `_loglikelihood_tokens`, batched and with shared-prefix reuse.
 *
 * Each request becomes one window, `(context + continuation)[-(maxLength + 1):]`, whose last
 * `len(continuation)` tokens are the targets (left truncation as in the harness). A causal
 * model's log-probability at position i depends only on tokens 0..i, so a window that is a
 * prefix of another window is answered from the longer window's forward pass: for multiple
 * choice tasks whose choices are single tokens, or share leading tokens, that removes whole
 * forwards (the harness's "one-token continuation" cache is the special case
 * context + continuation[:-1] equal). Windows are forwarded longest first (as the harness sorts),
 * in batches of at most `batchSize` windows and `maxBatchTokens` tokens.
 */
import type { LogLikelihood, ScoreWindow, TokenRequest, TokenScorer } from "./types.js";

export interface ScoreOptions {
  /** Windows per forward call. */
  batchSize?: number;
  /** Upper bound on the sum of window lengths per call (the longest window always fits alone). */
  maxBatchTokens?: number;
  /** Called after every batch. */
  onProgress?: (progress: ScoreProgress) => void;
  /** Compute is_greedy (default true). */
  greedy?: boolean;
  /** Names request i in the error for a request the harness rejects (e.g. its task and doc). */
  describeRequest?: (index: number) => string;
}

export interface ScoreProgress {
  windowsDone: number;
  windowsTotal: number;
  requestsTotal: number;
  tokensDone: number;
  elapsedMs: number;
}

export interface ScoreStats {
  requests: number;
  /** Forward windows after prefix reuse (<= requests). */
  windows: number;
  /** Tokens fed to the model (sum of window lengths - 1). */
  inputTokens: number;
  /** Requests whose context + continuation was longer than maxLength + 1 and lost tokens on the left. */
  truncated: number;
  batches: number;
  elapsedMs: number;
}

interface Window {
  tokens: Int32Array;
  /** Index of the first continuation token inside `tokens`. */
  firstTarget: number;
}

/** Lexicographic order; a prefix sorts before its extensions. */
function compareTokens(a: Int32Array, b: Int32Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function isPrefix(prefix: Int32Array, of: Int32Array): boolean {
  if (prefix.length > of.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== of[i]) return false;
  return true;
}

/** Builds the window of one request exactly as the harness truncates it. */
export function requestWindow(
  request: TokenRequest,
  maxLength: number,
  index = 0,
): Window & { truncated: boolean } {
  const { contextTokens, continuationTokens } = request;
  if (contextTokens.length === 0) {
    throw new Error(
      `request ${index}: empty context tokens (a context made only of whitespace encodes to nothing; the harness rejects it too)`,
    );
  }
  if (continuationTokens.length === 0) {
    throw new Error(`request ${index}: empty continuation tokens; nothing to score`);
  }
  if (continuationTokens.length > maxLength) {
    throw new Error(
      `request ${index}: continuation of ${continuationTokens.length} tokens exceeds the model's max length ${maxLength}`,
    );
  }
  const whole = contextTokens.concat(continuationTokens);
  const kept = whole.slice(-(maxLength + 1));
  return {
    tokens: Int32Array.from(kept),
    firstTarget: kept.length - continuationTokens.length,
    truncated: kept.length < whole.length,
  };
}

export async function scoreRequests(
  scorer: TokenScorer,
  requests: readonly TokenRequest[],
  options: ScoreOptions = {},
): Promise<{ results: LogLikelihood[]; stats: ScoreStats }> {
  const batchSize = options.batchSize ?? 16;
  const maxBatchTokens = options.maxBatchTokens ?? Number.POSITIVE_INFINITY;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  if (!Number.isInteger(scorer.maxLength) || scorer.maxLength < 1) {
    throw new RangeError(`model maxLength must be a positive integer, got ${scorer.maxLength}`);
  }
  const started = performance.now();
  let truncated = 0;
  const windows = requests.map((r, i) => {
    let w: ReturnType<typeof requestWindow>;
    try {
      w = requestWindow(r, scorer.maxLength, i);
    } catch (e) {
      if (!options.describeRequest) throw e;
      throw new Error(`${options.describeRequest(i)}: ${(e as Error).message}`);
    }
    if (w.truncated) truncated++;
    return w;
  });

  // Group windows under a host window they are a prefix of (sorted order makes prefixes adjacent).
  const order = windows
    .map((_, i) => i)
    .sort((a, b) => {
      const c = compareTokens(windows[a]!.tokens, windows[b]!.tokens);
      return c !== 0 ? c : a - b;
    });
  const hostOf = new Int32Array(windows.length);
  for (let k = order.length - 1; k >= 0; k--) {
    const i = order[k]!;
    const next = order[k + 1];
    hostOf[i] =
      next !== undefined && isPrefix(windows[i]!.tokens, windows[next]!.tokens) ? hostOf[next]! : i;
  }
  // One host per group; each member request reads its targets and (optionally) asks for the
  // is_greedy flag of its own target range.
  interface Host {
    index: number;
    scoreFrom: number;
    ranges: [number, number][];
    rangeOf: Map<number, number>;
  }
  const hosts: Host[] = [];
  const hostSlot = new Map<number, number>();
  for (let i = 0; i < windows.length; i++) {
    const h = hostOf[i]!;
    const w = windows[i]!;
    let slot = hostSlot.get(h);
    if (slot === undefined) {
      slot = hosts.length;
      hostSlot.set(h, slot);
      hosts.push({ index: h, scoreFrom: w.firstTarget, ranges: [], rangeOf: new Map() });
    }
    const host = hosts[slot]!;
    host.scoreFrom = Math.min(host.scoreFrom, w.firstTarget);
    let r = host.ranges.findIndex(([a, b]) => a === w.firstTarget && b === w.tokens.length);
    if (r < 0) r = host.ranges.push([w.firstTarget, w.tokens.length]) - 1;
    host.rangeOf.set(i, r);
  }
  // Longest first, ties in token order, as the harness's collator sorts.
  hosts.sort((a, b) => {
    const ta = windows[a.index]!.tokens;
    const tb = windows[b.index]!.tokens;
    return tb.length - ta.length || compareTokens(ta, tb);
  });

  const greedy = options.greedy ?? true;
  const results: LogLikelihood[] = new Array(windows.length);
  let done = 0;
  let tokensDone = 0;
  let batches = 0;
  while (done < hosts.length) {
    const batch: Host[] = [];
    let batchTokens = 0;
    while (done + batch.length < hosts.length && batch.length < batchSize) {
      const next = hosts[done + batch.length]!;
      const len = windows[next.index]!.tokens.length;
      if (batch.length > 0 && batchTokens + len > maxBatchTokens) break;
      batch.push(next);
      batchTokens += len;
    }
    const input: ScoreWindow[] = batch.map((h) => ({
      tokens: windows[h.index]!.tokens,
      scoreFrom: h.scoreFrom,
      ...(greedy ? { greedyRanges: h.ranges } : {}),
    }));
    const out = await scorer.scoreWindows(input);
    if (out.length !== input.length) {
      throw new Error(`model returned ${out.length} results for ${input.length} windows`);
    }
    out.forEach((s, j) => {
      const h = batch[j]!;
      const expected = windows[h.index]!.tokens.length - h.scoreFrom;
      if (s.logprobs.length !== expected) {
        throw new Error(
          `model returned ${s.logprobs.length} log-probs for a window with ${expected} targets`,
        );
      }
      if (greedy && s.greedy?.length !== h.ranges.length) {
        throw new Error(
          `model returned ${s.greedy?.length ?? "no"} greedy flags for ${h.ranges.length} ranges`,
        );
      }
      for (const [member, r] of h.rangeOf) {
        const w = windows[member]!;
        let logprob = 0;
        for (let t = w.firstTarget; t < w.tokens.length; t++)
          logprob += s.logprobs[t - h.scoreFrom]!;
        results[member] = { logprob, isGreedy: greedy ? s.greedy![r]! : null };
      }
    });
    done += batch.length;
    tokensDone += batchTokens - batch.length;
    batches++;
    options.onProgress?.({
      windowsDone: done,
      windowsTotal: hosts.length,
      requestsTotal: requests.length,
      tokensDone,
      elapsedMs: performance.now() - started,
    });
  }

  return {
    results,
    stats: {
      requests: requests.length,
      windows: hosts.length,
      inputTokens: tokensDone,
      truncated,
      batches,
      elapsedMs: performance.now() - started,
    },
  };
}
