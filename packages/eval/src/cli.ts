#!/usr/bin/env node
/**
 * `pnpm eval`: zero-shot tasks (and held-out perplexity) for a checkpoint, scored as
 * lm-evaluation-harness does. With no arguments: the newest checkpoint under ./runs/ on the
 * bundled fixtures (all tasks). Writes results.json (harness shape) and prints the table.
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve, sep } from "node:path";
import { parseArgs } from "node:util";
import { ShardSet, tokenizerIdentity } from "@tinyllama/data";
import { newestCheckpoint } from "./checkpoints.js";
import { COMMON_FLAGS, dataSource, numberFlag, parseDevice, parseDtype } from "./cli-options.js";
import { loadTaskDocs } from "./docs.js";
import type { PairEncodingOptions } from "./encode.js";
import { evaluate, type TaskInput } from "./evaluate.js";
import { loadCheckpoint } from "./llama.js";
import { checkPerplexitySource, shardPerplexity } from "./perplexity.js";
import { formatPaperView, formatTable, paperView, toHarnessJson } from "./results.js";
import type { ScoreProgress } from "./score.js";
import { resolveTasks, TASK_GROUPS } from "./tasks/index.js";
import type { Task } from "./tasks/task.js";

const USAGE = `usage: pnpm eval [options]

  --checkpoint <dir>      checkpoint, stage dir, or Hugging Face Llama dir
                          (default: newest checkpoint under ./runs/)
  --tasks <list>          comma-separated tasks or groups: commonsense, chinese, all
                          (default: all; "none" with --perplexity for perplexity only)
  --data-dir <dir>        local copy of the hub datasets (<dir>/<owner>/<repo>/<config>/<split>/*.parquet,
                          <dir>/<owner>/<repo>/<config>/<split>-*.parquet, the same under <dir>/<task>/,
                          or <dir>/<task>.jsonl); default: the bundled fixtures (not real data)
  --hub                   download the splits' parquet files from the hub (refs/convert/parquet) into
                          the cache; HF_TOKEN and HF_ENDPOINT are honoured
  --hub-revision <rev>    another revision of the datasets (default refs/convert/parquet)
  --limit <n>             first n docs per task
  --harness <version>     request encoding of an lm-eval release: 0.4.9.1 (default: no BOS),
                          0.4.9.2 (BOS prepended, the tokenizer default), 0.4.2 (no BOS, EOS as
                          the empty context)
  --add-bos / --no-add-bos  override the BOS choice of --harness
  --device <cpu|cuda|auto>  (default auto)
  --dtype <f32|bf16>      compute dtype (default f32 on CPU, bf16 on CUDA)
  --batch-size <n>        windows per forward (default 16)
  --max-batch-tokens <n>  cap on tokens per forward
  --max-length <n>        model context for truncation (default: the model's)
  --pad-multiple <n>      pad each batch to its longest window rounded up to a multiple of n
                          (default 8)
  --tokenizer <path>      tokenizer.model / tokenizer.json (default: the checkpoint's, else bundled)
  --perplexity <dir>      also report perplexity on a shard directory's held-out split
  --perplexity-split <s>  split to read (default validation)
  --perplexity-blocks <n> cap on blocks, evenly spaced (default 64)
  --output <dir>          where results.json goes (default: runs/<run>/eval/<stage>-step-N-<time>/
                          beside the run that made the checkpoint, else runs/eval/<name>-<time>/)
  --log-samples           also write samples_<task>.jsonl (per-request texts, token ids, log-probs)
  --no-is-greedy          skip the harness's is_greedy flag (used by no metric here; one argmax
                          over each batch's logits): samples then hold null
  --help
`;

const PRESETS: Record<string, PairEncodingOptions> = {
  "0.4.2": { addBos: false, emptyContextToken: "eos" },
  "0.4.9.1": { addBos: false, emptyContextToken: "bos" },
  "0.4.9.2": { addBos: true, emptyContextToken: "bos" },
};

const positiveInt = (name: string, v: string | undefined) => numberFlag(name, v, 1, true);

function progressPrinter(label: string) {
  let last = 0;
  return (p: ScoreProgress) => {
    const now = performance.now();
    if (p.windowsDone < p.windowsTotal && now - last < 2000) return;
    last = now;
    const s = p.elapsedMs / 1000;
    const rate = p.windowsDone / Math.max(s, 1e-9);
    const eta = (p.windowsTotal - p.windowsDone) / Math.max(rate, 1e-9);
    console.error(
      `[${label}] ${p.windowsDone}/${p.windowsTotal} windows (${p.requestsTotal} requests), ` +
        `${rate.toFixed(1)} windows/s, ${(p.tokensDone / Math.max(s, 1e-9)).toFixed(0)} tok/s, ETA ${eta.toFixed(0)}s`,
    );
  };
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    // `pnpm eval -- --tasks x`: pnpm hands the `--` on, which parseArgs takes as "only
    // positionals follow"
    args: argv[0] === "--" ? argv.slice(1) : argv,
    options: {
      ...COMMON_FLAGS,
      harness: { type: "string" },
      "add-bos": { type: "boolean" },
      "no-add-bos": { type: "boolean" },
      "max-batch-tokens": { type: "string" },
      "max-length": { type: "string" },
      "pad-multiple": { type: "string" },
      perplexity: { type: "string" },
      "perplexity-split": { type: "string" },
      "perplexity-blocks": { type: "string" },
      "no-is-greedy": { type: "boolean" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const harnessName = values.harness ?? "0.4.9.1";
  const preset = PRESETS[harnessName];
  if (!preset) {
    throw new Error(
      `--harness must be one of ${Object.keys(PRESETS).join(", ")}, got "${values.harness}"`,
    );
  }
  if (values["add-bos"] && values["no-add-bos"])
    throw new Error("--add-bos and --no-add-bos together");
  const encoding: PairEncodingOptions = {
    ...preset,
    // a release before 0.4.9.2 run with add_bos_token=True also put BOS into an empty
    // context's continuation
    ...(values["add-bos"] ? { addBos: true, legacyEmptyContext: !preset.addBos } : {}),
    ...(values["no-add-bos"] ? { addBos: false } : {}),
  };
  const device = parseDevice(values.device);
  const dtype = parseDtype(values.dtype);
  const limit = positiveInt("limit", values.limit);
  const batchSize = positiveInt("batch-size", values["batch-size"]) ?? 16;
  const maxBatchTokens = positiveInt("max-batch-tokens", values["max-batch-tokens"]);
  const maxLength = positiveInt("max-length", values["max-length"]);
  const padMultiple = positiveInt("pad-multiple", values["pad-multiple"]);
  const perplexityBlocks = positiveInt("perplexity-blocks", values["perplexity-blocks"]) ?? 64;
  for (const flag of ["perplexity-split", "perplexity-blocks"] as const) {
    if (values[flag] !== undefined && !values.perplexity)
      throw new Error(`--${flag} needs --perplexity <shard dir>`);
  }
  const taskList = values.tasks ?? "all";
  const tasks = taskList === "none" ? [] : resolveTasks(taskList);
  if (tasks.length === 0 && !values.perplexity) throw new Error("--tasks none needs --perplexity");

  // Read and validate the data before loading a model: a bad file fails in milliseconds.
  const { dataDir, hub } = dataSource(values);
  const inputs: TaskInput[] = [];
  const docCountMismatch: Record<string, { found: number; expected: number }> = {};
  for (const task of tasks) {
    const loaded = await loadTaskDocs(task, { dataDir, hub });
    inputs.push({ task, docs: loaded.docs, files: loaded.files });
    // every doc that will be scored must match the task's schema: a missing or mistyped field
    // fails here, naming task, doc, file and field, not after minutes of model loading
    checkDocs(task, loaded.docs, loaded.files, limit);
    // a full run of real data should hold the split's published count; another count means
    // another split, a partial mirror or another version of the dataset
    if ((dataDir || hub) && limit === undefined && loaded.docs.length !== task.dataset.size) {
      docCountMismatch[task.name] = { found: loaded.docs.length, expected: task.dataset.size };
      console.error(
        `[eval] WARNING ${task.name}: ${loaded.docs.length} docs in ${loaded.files.join(", ")}; ` +
          `the ${task.dataset.split} split of ${task.dataset.path} has ${task.dataset.size}`,
      );
    }
  }
  if (!dataDir && !hub && tasks.length > 0) {
    console.error(
      "[eval] using the bundled FIXTURES (hand-written examples, not the benchmarks); pass --data-dir for real data",
    );
  }

  // The perplexity shards too: a missing directory or split fails here, before a model loads;
  // another tokenizer or blocks longer than the model's context right after it loads, before
  // the zero-shot tasks are scored (whose results a later failure would lose). ShardSet.open
  // leaves no file open (files are opened on the first read), so nothing leaks if a step
  // before the model's try/finally throws.
  // --output must be a directory (or not exist yet): found out before scoring, not after it
  if (values.output !== undefined) checkOutputDir(resolve(values.output));

  const perplexitySplit = values["perplexity-split"] ?? "validation";
  const shards = values.perplexity
    ? await ShardSet.open(values.perplexity, { split: perplexitySplit })
    : undefined;

  // a stage or run directory means its newest checkpoint: resolved here so that the tokenizer
  // saved with it, the results' model name and the default output directory all follow it
  const { resolveWeightsDir } = await import("@tinyllama/trainer");
  const checkpoint = resolveWeightsDir(
    resolve(values.checkpoint ?? newestCheckpoint(resolve("runs")).path),
  );
  console.error(`[eval] checkpoint ${checkpoint}`);
  const startedAt = new Date();
  const loaded = await loadCheckpoint(checkpoint, {
    device,
    dtype,
    tokenizer: values.tokenizer,
    maxLength,
    padMultiple,
  });
  try {
    if (shards) {
      // Refuses shards tokenized with another vocabulary than the checkpoint's tokenizer.
      shards.assertTokenizer(tokenizerIdentity(loaded.tokenizer));
      checkPerplexitySource(loaded.scorer, shards);
    }
    console.error(
      `[eval] ${loaded.scorer.description}; tokenizer ${loaded.tokenizerSource}; ` +
        `add_bos=${encoding.addBos}, empty context=${encoding.emptyContextToken}`,
    );
    const out = await evaluate(inputs, loaded.tokenizer, loaded.scorer, {
      encoding,
      limit,
      batchSize,
      maxBatchTokens,
      greedy: !values["no-is-greedy"],
      onProgress: progressPrinter("eval"),
    });
    let perplexity: Record<string, unknown> | undefined;
    if (shards) {
      const r = await shardPerplexity(loaded.scorer, shards, {
        maxBlocks: perplexityBlocks,
        batchSize,
        maxBatchTokens,
        onProgress: (d, t) => console.error(`[perplexity] ${d}/${t} blocks`),
      });
      perplexity = { shard_dir: shards.dir, split: perplexitySplit, ...r };
    }
    const json = toHarnessJson(out, {
      model: checkpoint,
      modelDescription: loaded.scorer.description,
      device: loaded.device,
      batchSize,
      limit: limit ?? null,
      startedAt,
      extra: {
        tokenizer: loaded.tokenizerSource,
        data:
          dataDir ??
          (hub
            ? `hub (${hub.revision ?? "refs/convert/parquet"})`
            : "bundled fixtures (not benchmark data)"),
        harness_preset: harnessName,
        ...(Object.keys(docCountMismatch).length > 0
          ? { doc_count_mismatch: docCountMismatch }
          : {}),
        ...(perplexity ? { perplexity } : {}),
      },
    });
    const view = paperView(json, TASK_GROUPS);
    if (view.length > 0) (json.tinyllama_ts as Record<string, unknown>).paper_view = view;
    const outDir = resolve(values.output ?? defaultOutputDir(checkpoint, startedAt));
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, "results.json"), JSON.stringify(json, null, 2) + "\n");
    if (values["log-samples"]) {
      for (const t of out.tasks) {
        const lines = t.samples.map((s) => JSON.stringify(s)).join("\n");
        writeFileSync(join(outDir, `samples_${t.task.name}.jsonl`), lines + "\n");
      }
    }
    if (tasks.length > 0) console.log(formatTable(json));
    if (view.length > 0) console.log(`\n${formatPaperView(view)}`);
    if (perplexity) {
      const p = perplexity as { loss: number; perplexity: number; blocks: number; tokens: number };
      console.log(
        `perplexity ${p.perplexity.toFixed(4)} (loss ${p.loss.toFixed(4)} nats/token over ${p.blocks} blocks, ${p.tokens} tokens)`,
      );
    }
    console.error(
      `[eval] ${out.stats.requests} requests in ${out.stats.windows} forward windows, ` +
        `${(out.stats.elapsedMs / 1000).toFixed(1)}s; results in ${outDir}`,
    );
    return 0;
  } finally {
    shards?.close();
    loaded.dispose();
  }
}

/** Parses and builds the docs `evaluate` will score; the first bad one is an error. */
function checkDocs(task: Task<never>, docs: readonly unknown[], files: string[], limit?: number) {
  const n = limit === undefined ? docs.length : Math.min(limit, docs.length);
  for (let docId = 0; docId < n; docId++) {
    try {
      task.build(task.parse(docs[docId] as never));
    } catch (e) {
      throw new Error(
        `${task.name} doc ${docId} (of ${files.join(", ")}): ${(e as Error).message}`,
      );
    }
  }
}

/** An existing path that is not a directory, or sits under a file, cannot take results.json. */
function checkOutputDir(dir: string) {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(d)) {
      if (!statSync(d).isDirectory()) {
        throw new Error(
          `--output ${dir}: ${d} is a file, not a directory (results.json and samples go into the --output directory)`,
        );
      }
      return;
    }
    if (dirname(d) === d) return;
  }
}

/**
 * Where results go by default: beside the run that made the checkpoint
 * (`runs/<run>/eval/<stage>-step-N-<time>/` for `runs/<run>/<stage>/checkpoints/step-N`), else
 * `runs/eval/<checkpoint dir name>-<time>/`.
 */
export function defaultOutputDir(checkpoint: string, startedAt: Date): string {
  const time = startedAt.toISOString().replace(/[:.]/g, "-");
  const parts = resolve(checkpoint).split(sep);
  const n = parts.length;
  if (n >= 4 && parts[n - 2] === "checkpoints" && /^step-\d{12}$/.test(parts[n - 1]!)) {
    const runDir = parts.slice(0, n - 3).join(sep) || sep;
    return join(runDir, "eval", `${parts[n - 3]}-${parts[n - 1]}-${time}`);
  }
  return join("runs", "eval", `${basename(checkpoint)}-${time}`);
}

const isMain =
  process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname);
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`eval: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
