/**
 * Text generation with a LlamaModel: prompt prefill and token-by-token decoding over the
 * KvDecoder's cache, greedy or sampled, with stop sequences, an EOS token and a new-token limit.
 *
 * Prompts are scheduled continuously over `batchSize` cache slots: every step decodes one token
 * for each running sequence and spends the remaining row budget prefilling waiting prompts (long
 * prompts in chunks), so a finished sequence's slot takes the next prompt at once. Sequences
 * never share padding (see kv-decoder.ts), so a prompt's tokens do not depend on which other
 * prompts run beside it; sampled sequence i draws from its own RNG stream (seed, i).
 *
 * Stop sequences are matched on decoded text, as strings: the generation ends at the token that
 * completes one, its text is cut before the match (the tokens are kept). Streamed text holds
 * back an incomplete UTF-8 character and any tail that could still become a stop sequence.
 */
import type { LlamaModel } from "../model/llama.js";
import { KvDecoder } from "./kv-decoder.js";
import { type SamplingOptions, TokenSampler, validateSampling } from "./sampling.js";

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most per prompt. Default 128. */
  maxNewTokens?: number;
  /** Strings that end a generation (needs `decode`). */
  stop?: string[];
  /** Token that ends a generation (kept in `tokens`, not in `text`); null for none. Default 2 (Llama </s>). */
  eosTokenId?: number | null;
  /** Base seed of the sampling RNG streams. Default 0. */
  seed?: number;
  /** Sequences decoded together (cache slots). Default min(prompts, 32). */
  batchSize?: number;
  /** Most new tokens per forward step (prefill chunk). Default 512. */
  maxRows?: number;
  /** Token ids to text; required for stop sequences and for `text`. */
  decode?: (ids: number[]) => string;
  /**
   * Ends prompt `index`'s generation early when it returns true for the text so far (the
   * continuation as `decode` gives it); for callers whose answer is settled before the limit.
   */
  stopWhen?: (index: number, text: string) => boolean;
  /**
   * Let prompt + new tokens run past the model's context (RoPE positions beyond it), as
   * transformers' generate does. Default false: generation ends at the context ("length").
   */
  extendContext?: boolean;
  /**
   * Sees the next-token logits of prompt `index` before its token number `step` (0-based) is
   * chosen: logits[offset .. offset + vocab). For scoring choices without generating text.
   */
  onLogits?: (index: number, step: number, logits: Float32Array, offset: number) => void;
  /** Called for every generated token, in generation order. */
  onToken?: (event: TokenEvent) => void;
}

export interface TokenEvent {
  /** Index of the prompt. */
  index: number;
  token: number;
  /** New text since the previous event of this prompt ("" when held back or no decoder). */
  text: string;
}

export type FinishReason = "stop" | "eos" | "length";

export interface Generation {
  index: number;
  /** Generated token ids (prompt excluded; the EOS or stop-completing token included). */
  tokens: number[];
  /** Decoded generated text, cut before a stop sequence; null without a decoder. */
  text: string | null;
  finishReason: FinishReason;
  /** The stop string that ended it, when finishReason is "stop". */
  stoppedBy?: string;
}

export type GenerationEvent = ({ kind: "token" } & TokenEvent) | ({ kind: "done" } & Generation);

interface SlotState {
  index: number;
  prompt: number[];
  filled: number;
  tokens: number[];
  sampler: TokenSampler;
  emitted: string;
}

/** Seed of prompt i's RNG stream: distinct per prompt, same wherever the prompt is batched. */
export function streamSeed(seed: number, index: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) + Math.imul(index + 1, 0x85ebca6b)) >>> 0;
}

function checkOptions(
  model: LlamaModel,
  prompts: readonly ArrayLike<number>[],
  o: GenerateOptions,
) {
  validateSampling(o);
  const maxNew = o.maxNewTokens ?? 128;
  if (!Number.isInteger(maxNew) || maxNew < 1) {
    throw new Error(`maxNewTokens must be a positive integer, got ${o.maxNewTokens}`);
  }
  if (o.batchSize !== undefined && (!Number.isInteger(o.batchSize) || o.batchSize < 1)) {
    throw new Error(`batchSize must be a positive integer, got ${o.batchSize}`);
  }
  if (((o.stop && o.stop.length > 0) || o.stopWhen) && !o.decode) {
    throw new Error("stop sequences are matched on text: pass decode (token ids -> string)");
  }
  if (o.stop?.some((s) => s.length === 0)) throw new Error("a stop sequence is empty");
  const ctx = model.config.maxSeqLen;
  for (const [i, p] of prompts.entries()) {
    if (p.length < 1) throw new Error(`prompt ${i} is empty (at least one token, e.g. BOS)`);
    if (!o.extendContext && p.length >= ctx) {
      throw new Error(
        `prompt ${i} has ${p.length} tokens; the model's context is ${ctx}, leaving no room to generate`,
      );
    }
  }
  return maxNew;
}

/**
 * The text the generated tokens add after the prompt. SentencePiece drops the leading space of
 * the first piece it decodes, so decoding the new tokens alone would lose the space between the
 * prompt and " word": decode them after the prompt's last tokens and take what they add.
 */
export function decodeContinuation(
  decode: (ids: number[]) => string,
  prompt: readonly number[],
  tokens: readonly number[],
): string {
  if (tokens.length === 0) return "";
  const anchor = prompt.slice(-4);
  const head = decode(anchor);
  const whole = decode([...anchor, ...tokens]);
  return whole.startsWith(head) ? whole.slice(head.length) : decode([...tokens]);
}

/** Text safe to stream: no trailing replacement char (partial UTF-8), no possible stop prefix. */
function streamable(text: string, stops: readonly string[]): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === "\uFFFD") end--;
  let hold = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, end); n > hold; n--) {
      if (text.slice(end - n, end) === s.slice(0, n)) {
        hold = n;
        break;
      }
    }
  }
  return text.slice(0, end - hold);
}

/**
 * Generates for every prompt, yielding token events as they are produced and a "done" event per
 * prompt when it finishes. Synchronous: each `next()` runs at most one forward step.
 */
export function* generateEvents(
  model: LlamaModel,
  prompts: readonly ArrayLike<number>[],
  opts: GenerateOptions = {},
): Generator<GenerationEvent> {
  const maxNew = checkOptions(model, prompts, opts);
  if (prompts.length === 0) return;
  const stops = opts.stop ?? [];
  const eos = opts.eosTokenId === undefined ? 2 : opts.eosTokenId;
  const seed = opts.seed ?? 0;
  const slots = Math.min(prompts.length, opts.batchSize ?? 32);
  let longest = 0;
  for (const p of prompts) longest = Math.max(longest, p.length);
  const maxLen = opts.extendContext
    ? longest + maxNew
    : Math.min(model.config.maxSeqLen, longest + maxNew);
  const maxRows = Math.max(opts.maxRows ?? 512, slots);
  const decoder = new KvDecoder(model, {
    slots,
    maxLen,
    maxRows,
    extendContext: !!opts.extendContext,
  });
  const V = model.config.vocabSize;
  // Greedy decoding that nobody watches the logits of needs only each row's argmax: the device
  // computes it and S ids come back instead of S x vocab logits (torch.argmax, as transformers'
  // greedy search: the first maximum, and a NaN logit counts as the maximum).
  const deviceGreedy = (opts.temperature ?? 0) === 0 && !opts.onLogits;
  const state: (SlotState | null)[] = new Array(slots).fill(null);
  let nextPrompt = 0;
  try {
    for (;;) {
      for (let s = 0; s < slots; s++) {
        if (state[s] === null && nextPrompt < prompts.length) {
          const i = nextPrompt++;
          state[s] = {
            index: i,
            prompt: Array.from(prompts[i]!),
            filled: 0,
            tokens: [],
            sampler: new TokenSampler(opts, streamSeed(seed, i)),
            emitted: "",
          };
        }
      }
      const segments = [];
      const owners: SlotState[] = [];
      let budget = maxRows;
      // Decoding sequences first (one row each), then prefill chunks with what is left.
      for (let s = 0; s < slots; s++) {
        const st = state[s];
        if (st && st.filled === st.prompt.length) {
          const last = st.tokens[st.tokens.length - 1]!;
          segments.push({ slot: s, tokens: [last], pos: st.prompt.length + st.tokens.length - 1 });
          owners.push(st);
          budget--;
        }
      }
      for (let s = 0; s < slots && budget > 0; s++) {
        const st = state[s];
        if (st && st.filled < st.prompt.length) {
          const chunk = st.prompt.slice(st.filled, st.filled + budget);
          segments.push({ slot: s, tokens: chunk, pos: st.filled });
          owners.push(st);
          st.filled += chunk.length;
          budget -= chunk.length;
        }
      }
      if (segments.length === 0) break;
      const greedyTokens = deviceGreedy ? decoder.stepGreedy(segments) : null;
      const logits = greedyTokens ? null : decoder.step(segments);
      for (const [i, st] of owners.entries()) {
        if (st.filled < st.prompt.length) continue; // mid-prompt chunk: no token yet
        let token: number;
        if (greedyTokens) token = greedyTokens[i]!;
        else {
          opts.onLogits?.(st.index, st.tokens.length, logits!, i * V);
          token = st.sampler.next(logits!, i * V, V);
        }
        st.tokens.push(token);
        let finish: FinishReason | null = null;
        let stoppedBy: string | undefined;
        let text: string | null = null;
        let delta = "";
        if (opts.decode) {
          const body = token === eos ? st.tokens.slice(0, -1) : st.tokens;
          text = decodeContinuation(opts.decode, st.prompt, body);
          let cut = -1;
          for (const stop of stops) {
            const at = text.indexOf(stop);
            if (at >= 0 && (cut < 0 || at < cut)) {
              cut = at;
              stoppedBy = stop;
            }
          }
          if (cut >= 0) {
            text = text.slice(0, cut);
            finish = "stop";
          }
          const safe = finish ? text : streamable(text, stops);
          if (safe.startsWith(st.emitted) && safe.length > st.emitted.length) {
            delta = safe.slice(st.emitted.length);
            st.emitted = safe;
          }
        }
        if (!finish && token === eos) finish = "eos";
        if (!finish && text !== null && opts.stopWhen?.(st.index, text)) finish = "stop";
        if (
          !finish &&
          (st.tokens.length >= maxNew || st.prompt.length + st.tokens.length >= maxLen)
        ) {
          finish = "length";
        }
        if (finish && text?.startsWith(st.emitted) && text.length > st.emitted.length) {
          delta += text.slice(st.emitted.length);
          st.emitted = text;
        }
        opts.onToken?.({ index: st.index, token, text: delta });
        yield { kind: "token", index: st.index, token, text: delta };
        if (finish) {
          const slot = state.indexOf(st);
          state[slot] = null;
          const done: Generation = {
            index: st.index,
            tokens: st.tokens,
            text,
            finishReason: finish,
          };
          if (stoppedBy !== undefined) done.stoppedBy = stoppedBy;
          yield { kind: "done", ...done };
        }
      }
    }
  } finally {
    decoder.dispose();
  }
}

/** Generates for every prompt; returns the generations in prompt order. */
export function generate(
  model: LlamaModel,
  prompts: readonly ArrayLike<number>[],
  opts: GenerateOptions = {},
): Generation[] {
  const out: Generation[] = new Array(prompts.length);
  for (const e of generateEvents(model, prompts, opts)) {
    if (e.kind === "done") {
      const { kind: _, ...g } = e;
      out[g.index] = g;
    }
  }
  return out;
}

/** The same events as an async iterator that yields to the event loop between tokens. */
export async function* generateStream(
  model: LlamaModel,
  prompts: readonly ArrayLike<number>[],
  opts: GenerateOptions = {},
): AsyncGenerator<GenerationEvent> {
  for (const e of generateEvents(model, prompts, opts)) {
    yield e;
    if (e.kind === "token") await new Promise<void>((r) => setImmediate(r));
  }
}
