/**
 * Problem-solving results in the zero-shot tasks' JSON shape (lm-evaluation-harness's
 * `results_*.json` keys, metric keys `"<metric>,none"`) so the same table printer and tools read
 * both; per-group rows (MMLU subjects, BBH tasks) under `group_subtasks`; the generation
 * settings, sandbox and data facts in `tinyllama_ts`. Plus the paper's Table 4 view.
 */
import type { HarnessResults, RunInfo } from "../results.js";
import { BBH_CONFIGS, BENCHMARKS, type BenchmarkName } from "./benchmarks.js";
import type { BenchmarkResult } from "./runner.js";

export function toProblemSolvingJson(
  runs: readonly BenchmarkResult[],
  info: RunInfo & { generation: Record<string, unknown>; sandbox?: Record<string, unknown> },
): HarnessResults {
  const results: HarnessResults["results"] = {};
  const versions: Record<string, number> = {};
  const nShot: Record<string, number> = {};
  const configs: Record<string, unknown> = {};
  const higherIsBetter: Record<string, Record<string, boolean>> = {};
  const nSamples: Record<string, { original: number; effective: number }> = {};
  const groupSubtasks: Record<string, string[]> = {};
  const perRun: Record<string, unknown> = {};
  for (const r of runs) {
    const spec = BENCHMARKS[r.name];
    const entry: Record<string, string | number> = { alias: r.name };
    for (const m of spec.metrics) {
      entry[`${m},none`] = r.metrics[m] ?? "N/A";
      entry[`${m}_stderr,none`] = r.stderr[m] ?? "N/A";
    }
    results[r.name] = entry;
    versions[r.name] = 1;
    nShot[r.name] = spec.shots;
    higherIsBetter[r.name] = Object.fromEntries(spec.metrics.map((m) => [m, true]));
    nSamples[r.name] = { original: r.nOriginal, effective: r.nItems };
    configs[r.name] = {
      task: r.name,
      harness: "InstructEval (declare-lab/instruct-eval)",
      num_fewshot: spec.shots,
      max_input_length: spec.maxInputTokens,
      max_new_tokens: spec.maxNewTokens,
      output_type: "generate_until",
      metric_list: spec.metrics.map((metric) => ({
        metric,
        aggregation: "mean",
        higher_is_better: true,
      })),
    };
    const groups = Object.keys(r.groups);
    groupSubtasks[r.name] = groups.length > 1 ? groups.map((g) => `${r.name}_${g}`) : [];
    if (groups.length > 1) {
      for (const [g, v] of Object.entries(r.groups)) {
        const sub: Record<string, string | number> = { alias: ` - ${g}` };
        for (const m of spec.metrics) {
          sub[`${m},none`] = v.metrics[m] ?? "N/A";
          sub[`${m}_stderr,none`] = "N/A";
        }
        results[`${r.name}_${g}`] = sub;
        versions[`${r.name}_${g}`] = 1;
        nShot[`${r.name}_${g}`] = spec.shots;
      }
    }
    perRun[r.name] = {
      items: r.nItems,
      shots_dropped_to_fit: r.shotsDropped,
      over_input_limit_without_shots: r.overLimit,
      generated_tokens: r.generatedTokens,
      seconds: r.seconds,
      data_files: r.files,
      ...r.notes,
      ...(r.name === "humaneval" ? { exec_status: countStatus(r) } : {}),
    };
  }
  return {
    results,
    group_subtasks: groupSubtasks,
    configs,
    versions,
    "n-shot": nShot,
    higher_is_better: higherIsBetter,
    "n-samples": nSamples,
    config: {
      model: "tinyllama-ts",
      model_args: `pretrained=${info.model},add_bos_token=True`,
      batch_size: info.batchSize,
      device: info.device,
      limit: info.limit,
      gen_kwargs: info.generation,
    },
    git_hash: info.gitHash ?? null,
    date: info.startedAt.getTime() / 1000,
    model_name: info.model,
    tinyllama_ts: {
      suite: "problem-solving (paper Table 4, InstructEval)",
      model_description: info.modelDescription,
      generation: info.generation,
      sandbox: info.sandbox ?? null,
      benchmarks: perRun,
      paper_view: paperTable4View(runs),
      ...info.extra,
    },
  };
}

function countStatus(r: BenchmarkResult): Record<string, number> {
  const c: Record<string, number> = {};
  for (const s of r.samples) if (s.exec) c[s.exec.status] = (c[s.exec.status] ?? 0) + 1;
  return c;
}

/**
 * A cell of "this run": BBH over fewer than the 27 tasks says so, as it is not the number the
 * paper's BBH column means (the mean over all 27).
 */
function thisRunCell(runs: readonly BenchmarkResult[], name: BenchmarkName, value: number): string {
  const cell = value.toFixed(2);
  if (name !== "bbh") return cell;
  const r = runs.find((x) => x.name === "bbh")!;
  const tasks = Object.keys(r.groups).length;
  return tasks < BBH_CONFIGS.length ? `${cell} (${tasks}/${BBH_CONFIGS.length} tasks)` : cell;
}

/** Table 4 of the paper (%, InstructEval). */
export const PAPER_TABLE4: Readonly<Record<string, Readonly<Record<BenchmarkName, number>>>> = {
  "TinyLlama v1.0": { mmlu: 25.34, bbh: 29.65, humaneval: 9.15, drop: 15.34 },
  "TinyLlama v1.1": { mmlu: 26.58, bbh: 29.27, humaneval: 6.71, drop: 15.21 },
  "TinyLlama v1.1 Math&Code": { mmlu: 24.6, bbh: 26.35, humaneval: 15.24, drop: 18.54 },
};

export function paperTable4View(runs: readonly BenchmarkResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of runs)
    out[r.name] = 100 * (r.metrics[BENCHMARKS[r.name].metrics[0]!] ?? Number.NaN);
  return out;
}

export function formatTable4(runs: readonly BenchmarkResult[]): string {
  const order: BenchmarkName[] = ["mmlu", "bbh", "humaneval", "drop"];
  const names = order.filter((n) => runs.some((r) => r.name === n));
  const view = paperTable4View(runs);
  const lines = [
    "Table 4 view (%; MMLU acc, BBH exact match, HumanEval pass@1, DROP InstructEval score):",
  ];
  lines.push(["", ...names].join("\t"));
  lines.push(["this run", ...names.map((n) => thisRunCell(runs, n, view[n]!))].join("\t"));
  for (const [model, ref] of Object.entries(PAPER_TABLE4)) {
    lines.push([`${model} (paper)`, ...names.map((n) => ref[n].toFixed(2))].join("\t"));
  }
  return lines.join("\n");
}
