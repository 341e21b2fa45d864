#!/usr/bin/env node
/**
 * pnpm data:prepare: stream, deduplicate, tokenize and pack the corpora into LITPKDS shards.
 * With no arguments it runs on the bundled sample and writes ./data/.
 */
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { runLocal } from "../executors/local.js";
import { table } from "../executors/progress.js";
import { writeSlurmScripts } from "../executors/slurm.js";
import {
  loadConfigFile,
  type PrepareConfig,
  resolveConfig,
  sampleConfig,
} from "../pipeline/config.js";
import { describeSkipped, loadOrMakePlan, planPath } from "../pipeline/plan.js";
import { summarize } from "../pipeline/summary.js";

const usage = `usage: data:prepare [options]

  --config <file>      JSON config (sources local or hub, subsets, output, dedup, ...);
                       default: the bundled sample in packages/data/sample
  --output <dir>       output directory (default: config's output, or ./data)
  --workers <n>        local worker processes (default: all cores, ${availableParallelism()} here);
                       not with --executor slurm
  --executor <kind>    local (default) or slurm (writes job-array scripts + submit.sh)
  --submit             with --executor slurm only: run submit.sh now (needs sbatch)
  --tokenizer <kind>   llama2 (default) or bytes (pipeline tests without the tokenizer)
  --no-dedup           skip exact and near-duplicate removal
  --strict             bad records (invalid JSON, missing text, corrupt files) are fatal
  -h, --help           this text

Reruns resume: finished tasks are skipped (markers under <output>/.work).
Environment: HF_TOKEN (gated datasets), HF_ENDPOINT (hub mirror), TINYLLAMA_CACHE (download cache).`;

/** A bad command line: printed with the usage, exit status 2. */
class UsageError extends Error {}

const TOKENIZERS = ["llama2", "bytes"] as const;
const EXECUTORS = ["local", "slurm"] as const;

/** Checks the flags among themselves, before any config is read or any input listed. */
function checkFlags(v: ReturnType<typeof parse>["values"]): { workers: number | undefined } {
  if (v.executor !== undefined && !(EXECUTORS as readonly string[]).includes(v.executor))
    throw new UsageError(`--executor must be local or slurm, got "${v.executor}"`);
  const slurm = v.executor === "slurm";
  // both would otherwise be ignored: --submit by the local run, --workers by the Slurm scripts
  if (v.submit && !slurm)
    throw new UsageError(
      "--submit needs --executor slurm (the local executor runs the job itself)",
    );
  if (v.workers !== undefined && slurm)
    throw new UsageError(
      "--workers has no effect with --executor slurm: each array element runs one task (set slurm.cpusPerTask in the config)",
    );
  // the tokenizer flag is checked here so the error names the flag, not the config it overrides
  if (v.tokenizer !== undefined && !(TOKENIZERS as readonly string[]).includes(v.tokenizer))
    throw new UsageError(`--tokenizer must be llama2 or bytes, got "${v.tokenizer}"`);
  if (v.workers === undefined) return { workers: undefined };
  if (!/^[1-9]\d*$/.test(v.workers))
    throw new UsageError(`--workers must be a positive integer, got "${v.workers}"`);
  return { workers: Number(v.workers) };
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parse>;
  let flags: ReturnType<typeof checkFlags>;
  try {
    args = parse();
    flags = checkFlags(args.values);
  } catch (err) {
    console.error(`data:prepare: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    console.log(usage);
    return 0;
  }
  let config: PrepareConfig = v.config
    ? await loadConfigFile(v.config)
    : sampleConfig(resolve("data"));
  const overrides: Partial<PrepareConfig> = {};
  if (v.output) overrides.output = v.output;
  if (v.tokenizer) overrides.tokenizer = v.tokenizer as PrepareConfig["tokenizer"];
  if (v.strict) overrides.strict = true;
  if (v["no-dedup"]) overrides.dedup = { ...config.dedup, enabled: false };
  config = resolveConfig({ ...config, ...overrides }, process.cwd(), v.config ?? "sample config");
  const workers = flags.workers ?? availableParallelism();

  const t0 = performance.now();
  // The bundled sample into its default output holds nothing but what the sample makes: a run
  // of an earlier version there starts over instead of stopping the main job.
  const { plan, resumed, restarted } = await loadOrMakePlan(config, undefined, {
    restartStale: !v.config && !v.output,
  });
  if (restarted) console.error(`data:prepare: ${restarted}: preparing the sample again`);
  // entries of a local source that are neither files nor folders (broken links, fifos, link
  // loops) are left out of the plan: say so on every run, the full list is in plan.json
  for (const s of plan.sources) {
    if (s.hub)
      console.error(
        `data:prepare: source ${s.name}: ${s.hub.repo} at ${s.hub.revision} = commit ${s.hub.commit} (pinned in the plan)`,
      );
    if (s.skipped?.length)
      console.error(
        `data:prepare: source ${s.name}: left out ${s.skipped.length} entries that are not files or folders: ` +
          `${describeSkipped(s.skipped)} (all in ${planPath(plan.workDir)})`,
      );
  }
  const inputBytes = plan.tasks.reduce((a, t) => a + t.files.reduce((b, f) => b + f.size, 0), 0);
  console.error(
    `data:prepare: ${config.sources.map((s) => s.name).join(", ")} -> ${config.output}  ` +
      `(${plan.tasks.length} tasks, ${(inputBytes / 1e6).toFixed(1)} MB input, tokenizer ${config.tokenizer}, ` +
      `dedup ${config.dedup.enabled ? `${config.dedup.minhash.bands}x${config.dedup.minhash.rows}` : "off"}${resumed ? ", resuming" : ""})`,
  );
  if (v.executor === "slurm") {
    const s = await writeSlurmScripts(plan, config.slurm);
    console.log(`Slurm scripts in ${s.dir}:`);
    for (const st of s.stages) console.log(`  ${st.script}  (${st.tasks} array tasks)`);
    if (v.submit) {
      const { spawnSync } = await import("node:child_process");
      const r = spawnSync("bash", [s.submit], { stdio: "inherit" });
      return r.status ?? 1;
    }
    console.log(`submit with: bash ${s.submit}   (rerun data:prepare afterwards for the summary)`);
    return 0;
  }
  const reports = await runLocal(plan, { workers });
  const wall = (performance.now() - t0) / 1000;
  const summary = await summarize(plan, wall);
  console.log(
    `\n${table([["stage", "tasks run", "already done", "seconds"], ...reports.map((r) => [r.stage, r.ran, r.skipped, r.seconds.toFixed(1)])])}`,
  );
  console.log(`\n${summary.table}`);
  console.log(
    `\nshards: ${config.output}/<source>/manifest.json  stats: ${summary.statsFile}  ` +
      `bad records: ${summary.badRecords}${summary.badRecords ? " (listed per task in stats.json)" : ""}` +
      (summary.rowsLost ? `  parquet rows lost: ${summary.rowsLost}` : "") +
      (summary.bytesUnreadable ? `  unreadable input bytes: ${summary.bytesUnreadable}` : "") +
      `  wall ${wall.toFixed(1)} s`,
  );
  return 0;
}

function parse() {
  const argv = process.argv.slice(2);
  return parseArgs({
    // `pnpm data:prepare -- --config f`: pnpm hands the `--` on, which parseArgs takes as
    // "only positionals follow"
    args: argv[0] === "--" ? argv.slice(1) : argv,
    options: {
      config: { type: "string" },
      output: { type: "string" },
      workers: { type: "string" },
      executor: { type: "string" },
      submit: { type: "boolean" },
      tokenizer: { type: "string" },
      "no-dedup": { type: "boolean" },
      strict: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`data:prepare: ${(err as Error).message}`);
    process.exit(1);
  },
);
