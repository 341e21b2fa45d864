/**
 * Perplexity on held-out shards: each packed block of `blockSize` tokens (2049) is one window,
 * inputs block[:-1], targets block[1:], as the trainer's loss sees it. Reports the mean
 * negative log-likelihood per target token, its exponent (perplexity), and the standard error
 * of the per-block mean loss. Blocks are taken evenly spaced over the split when capped, so a
 * capped run is deterministic and still spans every file.
 */
import type { TokenScorer } from "./types.js";

/** What perplexity needs from a shard reader (satisfied by @tinyllama/data's ShardSet). */
export interface BlockSource {
  readonly numBlocks: number;
  readonly blockSize: number;
  readGlobalBlock(index: number, out?: Uint16Array): Uint16Array;
}

export interface PerplexityResult {
  blocks: number;
  tokens: number;
  loss: number;
  perplexity: number;
  bitsPerToken: number;
  lossStderr: number | "N/A";
  blocksAvailable: number;
}

export function pickBlocks(available: number, maxBlocks?: number): number[] {
  const n = maxBlocks === undefined ? available : Math.min(maxBlocks, available);
  return Array.from({ length: n }, (_, i) => Math.floor((i * available) / n));
}

/**
 * Throws unless `source` can be scored by `scorer`: a block is one window of blockSize - 1
 * inputs (no sliding window over a shorter context), and the split must hold a block. Cheap:
 * the CLI calls it before any zero-shot scoring, so a bad --perplexity fails in seconds.
 */
export function checkPerplexitySource(
  scorer: Pick<TokenScorer, "maxLength">,
  source: Pick<BlockSource, "numBlocks" | "blockSize">,
): void {
  if (source.blockSize - 1 > scorer.maxLength) {
    throw new Error(
      `blocks of ${source.blockSize} tokens need a context of ${source.blockSize - 1}; the model has ${scorer.maxLength}`,
    );
  }
  if (source.numBlocks === 0) throw new Error("the held-out split has no blocks");
}

export async function shardPerplexity(
  scorer: TokenScorer,
  source: BlockSource,
  options: {
    maxBlocks?: number;
    batchSize?: number;
    /** Cap on tokens per forward, counted as scoreRequests does (window length); at least one block. */
    maxBatchTokens?: number;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<PerplexityResult> {
  checkPerplexitySource(scorer, source);
  const indices = pickBlocks(source.numBlocks, options.maxBlocks);
  const batchSize = Math.max(
    1,
    Math.min(
      options.batchSize ?? 4,
      Math.floor((options.maxBatchTokens ?? Number.POSITIVE_INFINITY) / source.blockSize),
    ),
  );
  const blockLosses: number[] = [];
  let totalNll = 0;
  let tokens = 0;
  for (let i = 0; i < indices.length; i += batchSize) {
    const batch = indices.slice(i, i + batchSize).map((b) => ({
      tokens: Int32Array.from(source.readGlobalBlock(b)),
      scoreFrom: 1,
    }));
    const scores = await scorer.scoreWindows(batch);
    for (const s of scores) {
      let nll = 0;
      for (const lp of s.logprobs) nll -= lp;
      totalNll += nll;
      tokens += s.logprobs.length;
      blockLosses.push(nll / s.logprobs.length);
    }
    options.onProgress?.(Math.min(i + batchSize, indices.length), indices.length);
  }
  const loss = totalNll / tokens;
  const n = blockLosses.length;
  const meanBlock = blockLosses.reduce((a, b) => a + b, 0) / n;
  const lossStderr =
    n < 2
      ? "N/A"
      : Math.sqrt(blockLosses.reduce((a, b) => a + (b - meanBlock) ** 2, 0) / (n - 1)) /
        Math.sqrt(n);
  return {
    blocks: n,
    tokens,
    loss,
    perplexity: Math.exp(loss),
    bitsPerToken: loss / Math.LN2,
    lossStderr,
    blocksAvailable: source.numBlocks,
  };
}
