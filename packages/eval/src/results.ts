/**
 * Results in the shape of lm-evaluation-harness's `results_<date>.json` (keys `results`,
 * `group_subtasks`, `configs`, `versions`, `n-shot`, `higher_is_better`, `n-samples`, `config`,
 * with metric keys `"acc,none"` / `"acc_stderr,none"`), plus a `tinyllama_ts` block with what the
 * harness does not record: the BOS and empty-context choices, data files, throughput. And the
 * harness's markdown table.
 */
import type { EvaluationOutput } from "./evaluate.js";
import { TARGET_DELIMITER } from "./tasks/task.js";

export interface RunInfo {
  /** e.g. the checkpoint directory. */
  model: string;
  modelDescription: string;
  device: string;
  batchSize: number;
  limit: number | null;
  gitHash?: string;
  startedAt: Date;
  extra?: Record<string, unknown>;
}

export type HarnessResults = Record<string, unknown> & {
  results: Record<string, Record<string, string | number>>;
  versions: Record<string, number>;
};

/** Which lm-eval releases, run with which add_bos_token, encode requests as these options do. */
function harnessEquivalent(
  addBos: boolean,
  emptyContextToken: "bos" | "eos",
  legacyEmptyContext = false,
): string {
  const releases = emptyContextToken === "bos" ? "0.4.3 - 0.4.9.1" : "0.4.0 - 0.4.2";
  if (!addBos) {
    return emptyContextToken === "bos"
      ? "lm-eval 0.4.3 - 0.4.9.1 (add_bos_token=False), or later with add_bos_token=False"
      : "lm-eval 0.4.0 - 0.4.2 (add_bos_token=False, EOS as empty context)";
  }
  if (legacyEmptyContext) return `lm-eval ${releases} with add_bos_token=True`;
  return emptyContextToken === "bos"
    ? "lm-eval >= 0.4.9.2 (tokenizer default: BOS prepended)"
    : "none: lm-eval >= 0.4.9.2 (BOS prepended) but with EOS as the empty context";
}

export function toHarnessJson(out: EvaluationOutput, info: RunInfo): HarnessResults {
  const results: HarnessResults["results"] = {};
  const configs: Record<string, unknown> = {};
  const versions: Record<string, number> = {};
  const nShot: Record<string, number> = {};
  const higherIsBetter: Record<string, Record<string, boolean>> = {};
  const nSamples: Record<string, { original: number; effective: number }> = {};
  const groupSubtasks: Record<string, string[]> = {};
  for (const r of out.tasks) {
    const name = r.task.name;
    const entry: Record<string, string | number> = { alias: name };
    for (const m of r.task.metrics) {
      entry[`${m},none`] = r.metrics[m] ?? "N/A";
      entry[`${m}_stderr,none`] = r.metrics[`${m}_stderr`] ?? "N/A";
    }
    results[name] = entry;
    groupSubtasks[name] = [];
    const { path, name: config, split } = r.task.dataset;
    configs[name] = {
      task: name,
      dataset_path: path,
      dataset_name: config,
      // the harness evaluates a yaml's test_split when it has one, else its validation_split
      ...(split === "test" ? { test_split: split } : { validation_split: split }),
      ...r.task.template,
      description: "",
      target_delimiter: TARGET_DELIMITER,
      fewshot_delimiter: "\n\n",
      num_fewshot: 0,
      metric_list: r.task.metrics.map((metric) => ({
        metric,
        aggregation: "mean",
        higher_is_better: true,
      })),
      output_type: "multiple_choice",
      repeats: 1,
      should_decontaminate: false,
      metadata: { version: r.task.version },
    };
    versions[name] = r.task.version;
    nShot[name] = 0;
    higherIsBetter[name] = Object.fromEntries(r.task.metrics.map((m) => [m, true]));
    nSamples[name] = { original: r.nOriginal, effective: r.nDocs };
  }
  const seconds = out.stats.elapsedMs / 1000;
  const { addBos, emptyContextToken, legacyEmptyContext } = out.encoding;
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
      model_args: `pretrained=${info.model},add_bos_token=${addBos ? "True" : "False"}`,
      batch_size: info.batchSize,
      device: info.device,
      limit: info.limit,
      bootstrap_iters: 100000,
      gen_kwargs: null,
    },
    git_hash: info.gitHash ?? null,
    date: info.startedAt.getTime() / 1000,
    model_name: info.model,
    total_evaluation_time_seconds: String(seconds),
    tinyllama_ts: {
      add_bos: addBos,
      empty_context_token: emptyContextToken,
      harness_equivalent: harnessEquivalent(addBos, emptyContextToken, legacyEmptyContext),
      model_description: info.modelDescription,
      requests: out.stats.requests,
      forward_windows: out.stats.windows,
      input_tokens: out.stats.inputTokens,
      truncated_requests: out.stats.truncated,
      scoring_seconds: seconds,
      requests_per_second: seconds > 0 ? out.stats.requests / seconds : null,
      gold_out_of_range: Object.fromEntries(out.tasks.map((r) => [r.task.name, r.goldOutOfRange])),
      data_files: Object.fromEntries(out.tasks.map((r) => [r.task.name, r.files])),
      ...info.extra,
    },
  };
}

function fmt(v: string | number | undefined): string {
  if (v === undefined) return "";
  return typeof v === "number" ? v.toFixed(4) : v;
}

/** The harness's printed table: one row per task and metric. */
export function formatTable(json: HarnessResults): string {
  const header = ["Tasks", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"];
  const rows: string[][] = [];
  for (const [task, entry] of Object.entries(json.results)) {
    const metrics = Object.keys(entry)
      .filter((k) => k.endsWith(",none") && !k.includes("_stderr"))
      .map((k) => k.slice(0, -",none".length))
      .sort();
    metrics.forEach((m, i) => {
      const stderr = entry[`${m}_stderr,none`];
      rows.push([
        i === 0 ? task : "",
        i === 0 ? String(json.versions[task] ?? "N/A") : "",
        "none",
        String((json["n-shot"] as Record<string, number> | undefined)?.[task] ?? 0),
        m,
        "↑",
        fmt(entry[`${m},none`]),
        "±",
        stderr === "N/A" ? "   N/A" : fmt(stderr),
      ]);
    });
  }
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const right = new Set([1, 3, 6, 8]);
  const line = (cells: string[]) =>
    `|${cells.map((s, c) => (right.has(c) ? s.padStart(widths[c]!) : s.padEnd(widths[c]!))).join("|")}|`;
  const rule = `|${widths.map((w, c) => (right.has(c) ? "-".repeat(w - 1) + ":" : "-".repeat(w))).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** The paper's Tables 3 and 5 (TinyLlama v1.1 rows, %), for context next to a run's numbers. */
export const PAPER_REFERENCE: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  "TinyLlama v1.0": {
    hellaswag: 59.2,
    openbookqa: 36.0,
    winogrande: 59.12,
    arc_challenge: 30.12,
    arc_easy: 55.25,
    boolq: 57.83,
    piqa: 73.29,
    xwinograd_zh: 68.45,
    xstorycloze_zh: 54.53,
    xnli_zh: 33.69,
    xcopa_zh: 56.8,
  },
  "TinyLlama v1.1": {
    hellaswag: 61.47,
    openbookqa: 36.8,
    winogrande: 59.43,
    arc_challenge: 32.68,
    arc_easy: 55.47,
    boolq: 55.99,
    piqa: 73.56,
    xwinograd_zh: 55.75,
    xstorycloze_zh: 47.98,
    xnli_zh: 34.7,
    xcopa_zh: 51.4,
  },
};

/** The averages as the paper prints them (its v1.0 Table 3 average is 52.99, not the 52.97 its cells give). */
const PAPER_AVERAGES: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  commonsense: { "TinyLlama v1.0": 52.99, "TinyLlama v1.1": 53.63 },
  chinese: { "TinyLlama v1.0": 53.37, "TinyLlama v1.1": 47.46 },
};

/**
 * The paper's view of a run: one number per task in %, acc_norm where the task reports it and
 * acc otherwise, and the average over each table's tasks when all of them were run.
 */
export function paperView(
  json: HarnessResults,
  groups: Readonly<Record<string, readonly string[]>>,
): { group: string; tasks: Record<string, number>; average: number }[] {
  const out: { group: string; tasks: Record<string, number>; average: number }[] = [];
  for (const [group, names] of Object.entries(groups)) {
    const tasks: Record<string, number> = {};
    for (const name of names) {
      const entry = json.results[name];
      const v = entry?.["acc_norm,none"] ?? entry?.["acc,none"];
      if (typeof v === "number") tasks[name] = 100 * v;
    }
    if (Object.keys(tasks).length !== names.length) continue;
    const values = Object.values(tasks);
    out.push({ group, tasks, average: values.reduce((a, b) => a + b, 0) / values.length });
  }
  return out;
}

export function formatPaperView(view: ReturnType<typeof paperView>): string {
  const lines: string[] = [];
  for (const { group, tasks, average } of view) {
    const names = Object.keys(tasks);
    lines.push(`${group} (acc_norm where reported, else acc; %):`);
    lines.push(["", ...names, "Avg"].join("\t"));
    lines.push(
      ["this run", ...names.map((n) => tasks[n]!.toFixed(2)), average.toFixed(2)].join("\t"),
    );
    for (const [model, ref] of Object.entries(PAPER_REFERENCE)) {
      const vals = names.map((n) => ref[n]!);
      const avg = PAPER_AVERAGES[group]?.[model] ?? vals.reduce((a, b) => a + b, 0) / vals.length;
      lines.push([`${model} (paper)`, ...vals.map((v) => v.toFixed(2)), avg.toFixed(2)].join("\t"));
    }
  }
  return lines.join("\n");
}
