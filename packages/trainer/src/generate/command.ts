/**
 * `generate`: text from a checkpoint of this project or a Hugging Face Llama directory. One
 * prompt streams its continuation token by token; several prompts (from --prompts, one per line
 * or JSON lines) are decoded together in batches and each is printed when it finishes (or as
 * JSON lines with --json). Timing (prefill + decode tokens/s) goes to stderr.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { LlamaTokenizer } from "@tinyllama/tokenizer";
import { resolveWeightsDir } from "../checkpoint/hf.js";
import { type FlagSpec, formatHelp, parseFlags, UsageError } from "../cli/args.js";
import { LlamaModel } from "../model/llama.js";
import { generateEvents } from "./generate.js";

export const GENERATE_USAGE =
  "usage: generate --checkpoint <dir> (--prompt <text> | --prompts <file>) [flags]";

export const GENERATE_FLAGS: FlagSpec[] = [
  {
    name: "checkpoint",
    type: "string",
    help: "checkpoint, stage or run directory, or a Hugging Face Llama directory",
    metavar: "dir",
  },
  {
    name: "prompt",
    type: "string",
    help: "one prompt (its continuation is streamed)",
    metavar: "text",
  },
  {
    name: "prompts",
    type: "string",
    help: 'file of prompts: one per line, or .jsonl with {"prompt": ...} or a JSON string per line',
    metavar: "file",
  },
  {
    name: "max-new-tokens",
    type: "int",
    min: 1,
    help: "tokens to generate at most per prompt",
    defaultText: "128",
  },
  { name: "temperature", type: "number", min: 0, help: "0 = greedy", defaultText: "0" },
  {
    name: "top-k",
    type: "int",
    min: 0,
    help: "sample from the k most likely tokens (0 = all)",
    defaultText: "0",
  },
  { name: "top-p", type: "number", help: "nucleus sampling threshold in (0, 1]", defaultText: "1" },
  {
    name: "seed",
    type: "int",
    min: 0,
    help: "sampling seed (prompt i draws from stream (seed, i))",
    defaultText: "0",
  },
  {
    name: "stop",
    type: "string",
    help: 'stop string (\\n and \\t are unescaped) or a JSON array of strings, e.g. \'["\\n\\n", "Q:"]\'',
  },
  { name: "ignore-eos", type: "boolean", help: "keep generating after </s>" },
  { name: "no-bos", type: "boolean", help: "do not put BOS before each prompt" },
  { name: "batch-size", type: "int", min: 1, help: "prompts decoded together", defaultText: "32" },
  {
    name: "device",
    type: "string",
    choices: ["auto", "cpu", "cuda"],
    help: "backend",
    defaultText: "auto",
  },
  {
    name: "dtype",
    type: "string",
    choices: ["f32", "bf16"],
    help: "compute dtype",
    defaultText: "f32 on CPU, bf16 on CUDA",
  },
  {
    name: "tokenizer",
    type: "string",
    help: "tokenizer.model / tokenizer.json (default: the checkpoint's, else the bundled Llama 2 one)",
  },
  { name: "json", type: "boolean", help: "print one JSON line per prompt instead of text" },
  { name: "help", type: "boolean", help: "show this help" },
];

export interface GenerateIo {
  out: (text: string) => void;
  err: (line: string) => void;
}

/** Stop strings from the flag: a JSON array, or one string with \n, \t and \\ unescaped. */
export function parseStops(raw: string | undefined): string[] {
  if (raw === undefined) return [];
  if (raw.startsWith("[")) {
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new UsageError(`--stop: not a JSON array (${(e as Error).message})`);
    }
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string" || s.length === 0)) {
      throw new UsageError("--stop: the JSON array must hold non-empty strings");
    }
    return v as string[];
  }
  const s = raw.replace(/\\(n|t|\\)/g, (_, c: string) =>
    c === "n" ? "\n" : c === "t" ? "\t" : "\\",
  );
  if (s.length === 0) throw new UsageError("--stop is empty");
  return [s];
}

/** Prompts of a file: JSON lines (objects with "prompt" or strings) for .jsonl, else one per line. */
export function readPrompts(path: string): string[] {
  if (!existsSync(path)) throw new UsageError(`--prompts: ${path} does not exist`);
  let text: string;
  try {
    // strict: a Latin-1 file read as UTF-8 would reach the model with U+FFFD in its prompts
    text = new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(path));
  } catch {
    throw new UsageError(`--prompts: ${path} is not valid UTF-8`);
  }
  // a byte-order mark is not part of the first prompt (it tokenizes to two extra pieces)
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const jsonl = /\.jsonl$/i.test(path);
  const out: string[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    if (!jsonl) {
      out.push(line);
      continue;
    }
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    const p = typeof v === "string" ? v : (v as { prompt?: unknown } | null)?.prompt;
    if (typeof p !== "string")
      throw new Error(`${path}:${i + 1}: expected a string or {"prompt": string}`);
    out.push(p);
  }
  if (out.length === 0) throw new UsageError(`--prompts: ${path} holds no prompts`);
  return out;
}

export async function generateCommand(argv: string[], io: GenerateIo): Promise<void> {
  const f = parseFlags(argv, GENERATE_FLAGS);
  if (f.help) {
    io.out(
      `${formatHelp(GENERATE_USAGE, "Generates text with a Llama checkpoint.", GENERATE_FLAGS)}\n`,
    );
    return;
  }
  // the sampler seeds a 32-bit stream per prompt: a larger seed would silently equal a smaller
  if (f.seed !== undefined && (f.seed as number) > 0xffffffff)
    throw new UsageError(`--seed must be at most ${0xffffffff} (2^32 - 1), got ${f.seed}`);
  const checkpoint = f.checkpoint as string | undefined;
  if (!checkpoint) throw new UsageError("--checkpoint <dir> is required");
  if ((f.prompt === undefined) === (f.prompts === undefined)) {
    throw new UsageError("give exactly one of --prompt <text> and --prompts <file>");
  }
  const texts = f.prompt !== undefined ? [f.prompt as string] : readPrompts(f.prompts as string);
  const stop = parseStops(f.stop as string | undefined);
  const topP = (f["top-p"] as number | undefined) ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new UsageError(`--top-p must be in (0, 1], got ${topP}`);

  // a stage or run directory means its newest checkpoint: resolved here so that the tokenizer
  // saved with that checkpoint is the default, as for a checkpoint directory given directly
  const weightsDir = resolveWeightsDir(checkpoint);
  const model = await LlamaModel.load(weightsDir, {
    device: (f.device as "auto" | "cpu" | "cuda" | undefined) ?? "auto",
    ...(f.dtype ? { computeDtype: f.dtype as "f32" | "bf16" } : {}),
  });
  try {
    const tokPath =
      (f.tokenizer as string | undefined) ??
      ["tokenizer.model", "tokenizer.json"]
        .map((n) => join(weightsDir, n))
        .find((p) => existsSync(p));
    const tok = await LlamaTokenizer.load(tokPath);
    if (tok.vocabSize > model.config.vocabSize) {
      throw new Error(
        `the tokenizer has ${tok.vocabSize} tokens but the model's vocabulary is ${model.config.vocabSize}; pass --tokenizer`,
      );
    }
    const prompts = texts.map((t) => tok.encode(t, { bos: !f["no-bos"] }));
    // --prompt streams its one completion bare; a prompts file keeps its per-prompt framing
    // whatever its length
    const single = f.prompt !== undefined && !f.json;
    io.err(
      `generate: ${weightsDir} (${model.config.name}, ${model.backend.name}, ${model.paramDtype}), ${prompts.length} prompt(s)`,
    );
    if (single) io.out(texts[0]!);
    const t0 = performance.now();
    let firstToken = 0;
    let generated = 0;
    for (const e of generateEvents(model, prompts, {
      maxNewTokens: (f["max-new-tokens"] as number | undefined) ?? 128,
      temperature: (f.temperature as number | undefined) ?? 0,
      topK: (f["top-k"] as number | undefined) ?? 0,
      topP,
      seed: (f.seed as number | undefined) ?? 0,
      stop,
      eosTokenId: f["ignore-eos"] ? null : tok.eosId,
      batchSize: (f["batch-size"] as number | undefined) ?? 32,
      decode: (ids) => tok.decode(ids),
    })) {
      if (e.kind === "token") {
        generated++;
        if (firstToken === 0) firstToken = performance.now();
        if (single) io.out(e.text);
        continue;
      }
      if (single) {
        io.out("\n");
        // the streamed text alone does not say whether </s>, a stop string or the limit ended it
        const by = e.stoppedBy !== undefined ? ` ${JSON.stringify(e.stoppedBy)}` : "";
        io.err(`generate: finish_reason ${e.finishReason}${by}, ${e.tokens.length} tokens`);
      } else if (f.json) {
        io.out(
          `${JSON.stringify({ index: e.index, prompt: texts[e.index], completion: e.text, tokens: e.tokens, finish_reason: e.finishReason })}\n`,
        );
      } else
        io.out(
          `=== [${e.index}] ${texts[e.index]}${e.text}\n--- (${e.finishReason}, ${e.tokens.length} tokens)\n`,
        );
    }
    const end = performance.now();
    const decodeS = (end - firstToken) / 1000;
    const rest = generated - Math.min(generated, prompts.length);
    io.err(
      `generate: ${generated} tokens in ${((end - t0) / 1000).toFixed(2)} s; first token after ${((firstToken - t0) / 1000).toFixed(2)} s; ` +
        `then ${decodeS > 0 ? (rest / decodeS).toFixed(1) : "-"} tokens/s`,
    );
  } finally {
    model.dispose();
  }
}
