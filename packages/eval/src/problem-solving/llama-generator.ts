/**
 * TextGenerator over the trainer's LlamaModel and its KV-cache decoding: prompts tokenized with
 * BOS (transformers' tokenizer default, as InstructEval calls it), greedy unless a temperature is
 * given, EOS ends a generation, the new tokens decoded alone (transformers' decode of
 * outputs[0, length:] with skip_special_tokens). Prompt + new tokens may run past the model's
 * context, as transformers' generate lets them.
 */
import type { LlamaTokenizer } from "@tinyllama/tokenizer";
import type { LlamaModel } from "@tinyllama/trainer";
import { encodePair } from "../encode.js";
import type { TextGenerator } from "./runner.js";

export interface LlamaGeneratorOptions {
  batchSize?: number;
  temperature?: number;
  seed?: number;
}

export class LlamaTextGenerator implements TextGenerator {
  readonly description: string;

  constructor(
    private readonly trainer: typeof import("@tinyllama/trainer"),
    private readonly model: LlamaModel,
    private readonly tokenizer: LlamaTokenizer,
    private readonly opts: LlamaGeneratorOptions = {},
  ) {
    this.description = `${model.config.name} (${model.backend.name}, ${model.paramDtype})`;
  }

  countTokens(prompt: string): number {
    return this.tokenizer.encode(prompt, { bos: true, eos: false }).length;
  }

  async generate(
    prompts: readonly string[],
    o: {
      maxNewTokens: number;
      settled?: (i: number, text: string) => boolean;
      onDone?: (i: number, tokens: number) => void;
    },
  ): Promise<string[]> {
    const tok = this.tokenizer;
    const ids = prompts.map((p) => tok.encode(p, { bos: true, eos: false }));
    const out: string[] = new Array(prompts.length).fill("");
    for (const e of this.trainer.generateEvents(this.model, ids, {
      maxNewTokens: o.maxNewTokens,
      eosTokenId: tok.eosId,
      temperature: this.opts.temperature ?? 0,
      seed: this.opts.seed ?? 0,
      batchSize: this.opts.batchSize ?? 32,
      extendContext: true,
      decode: (t) => tok.decode(t),
      ...(o.settled ? { stopWhen: o.settled } : {}),
    })) {
      if (e.kind !== "done") continue;
      const body = e.finishReason === "eos" ? e.tokens.slice(0, -1) : e.tokens;
      out[e.index] = tok.decode(body);
      o.onDone?.(e.index, e.tokens.length);
      // Let progress lines and signals through between prompts.
      await new Promise<void>((r) => setImmediate(r));
    }
    return out;
  }

  async choiceLogits(
    prompts: readonly string[],
    continuations: readonly string[],
  ): Promise<number[][]> {
    const tok = this.tokenizer;
    const encoding = { addBos: true, emptyContextToken: "bos" as const };
    const ids: number[][] = [];
    const candidates: number[][] = [];
    for (const p of prompts) {
      const pairs = continuations.map((c) =>
        encodePair(tok, { context: p, continuation: c }, encoding),
      );
      ids.push(pairs[0]!.contextTokens);
      candidates.push(pairs.map((q) => q.continuationTokens[0]!));
    }
    const out: number[][] = new Array(prompts.length);
    for (const e of this.trainer.generateEvents(this.model, ids, {
      maxNewTokens: 1,
      eosTokenId: null,
      batchSize: this.opts.batchSize ?? 32,
      extendContext: true,
      onLogits: (i, _step, logits, offset) => {
        out[i] = candidates[i]!.map((t) => logits[offset + t]!);
      },
    })) {
      if (e.kind === "done") await new Promise<void>((r) => setImmediate(r));
    }
    return out;
  }
}
