/**
 * Where the benchmarks' records come from, as for the zero-shot tasks: the bundled fixtures
 * (fixtures/problem-solving/, laid out like a hub mirror; hand-written, not benchmark data), a
 * local mirror of the hub datasets (`--data-dir`: `<dir>/<owner>/<repo>/<config>/<split>/*.parquet`
 * or .jsonl) or the hub's parquet conversion (`--hub`).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { HubOptions } from "@tinyllama/data";
import { FIXTURES_DIR, hubLayoutFiles, hubTaskFiles, readTaskRecords } from "../docs.js";
import {
  BBH_CONFIGS,
  type BenchmarkName,
  bbhItems,
  benchmarkSplits,
  dropItems,
  type GenItem,
  humanevalItems,
  mmluItems,
  type RecordLocator,
  type SplitSpec,
} from "./benchmarks.js";
import type { BenchmarkInput } from "./runner.js";

export const PROBLEM_SOLVING_FIXTURES = join(FIXTURES_DIR, "problem-solving");

export interface DataSource {
  /** Local hub mirror; default the fixtures. */
  dataDir?: string;
  hub?: HubOptions;
  /**
   * BBH from a `dataDir` that lacks some of the 27 configs: score the ones present (the mean of
   * fewer tasks, not the paper's BBH number) instead of failing. The fixtures always run partial.
   */
  bbhPartial?: boolean;
}

function splitDir(root: string, s: SplitSpec): string {
  return join(root, s.path, s.name ?? "default", s.split);
}

async function readSplit(
  key: string,
  s: SplitSpec,
  source: DataSource,
): Promise<{ files: string[]; records: unknown[]; where: RecordLocator }> {
  const ref = { name: key, dataset: s };
  const files = source.dataDir
    ? hubLayoutFiles(source.dataDir, ref)
    : source.hub
      ? await hubTaskFiles(ref, source.hub)
      : hubLayoutFiles(PROBLEM_SOLVING_FIXTURES, ref);
  const records: unknown[] = [];
  // where each file's records start, so an invalid record is named by its file and row there
  const starts: number[] = [];
  for (const f of files) {
    starts.push(records.length);
    records.push(...(await readTaskRecords(f, "pnpm eval:problem-solving")));
  }
  const where = (i: number) => {
    let j = starts.length - 1;
    while (j > 0 && starts[j]! > i) j--;
    return `${key}: ${files[j]}: record ${i - starts[j]!} (0-based, blank lines not counted)`;
  };
  return { files, records, where };
}

/**
 * Loads a benchmark's records and builds its items. BBH from a local mirror needs all 27 configs
 * unless `bbhPartial` (then it runs those present and notes the rest as missing).
 */
export async function loadBenchmark(
  name: BenchmarkName,
  source: DataSource = {},
): Promise<BenchmarkInput> {
  const root = source.dataDir ?? (source.hub ? null : PROBLEM_SOLVING_FIXTURES);
  if (name === "bbh") {
    const configs = root
      ? BBH_CONFIGS.filter((c) => existsSync(splitDir(root, benchmarkSplits("bbh", [c])[c]!)))
      : [...BBH_CONFIGS];
    if (configs.length === 0) {
      throw new Error(`bbh: no lukaemon/bbh/<config>/test/ directory under ${root}`);
    }
    const absent = BBH_CONFIGS.filter((c) => !configs.includes(c));
    // A mirror missing tasks would give the mean of fewer tasks, printed beside the paper's
    // 27-task BBH number as if comparable: refuse unless asked for (the fixtures are partial).
    if (source.dataDir && absent.length > 0 && !source.bbhPartial) {
      throw new Error(
        `bbh: ${absent.length} of ${BBH_CONFIGS.length} configs missing under ${root}/lukaemon/bbh/ (${absent.join(", ")}); pass --bbh-partial to score the ${configs.length} present (not comparable to the paper's BBH)`,
      );
    }
    const items: GenItem[] = [];
    const files: string[] = [];
    for (const [c, split] of Object.entries(benchmarkSplits("bbh", configs))) {
      const { files: f, records, where } = await readSplit(`bbh_${c}`, split, source);
      files.push(...f);
      items.push(...bbhItems(c, records, 3, where));
    }
    return { name, items, files, notes: { bbh_configs: configs, bbh_configs_missing: absent } };
  }
  const splits = benchmarkSplits(name);
  const loaded: Record<string, { files: string[]; records: unknown[]; where: RecordLocator }> = {};
  for (const [key, split] of Object.entries(splits))
    loaded[key] = await readSplit(`${name}_${key}`, split, source);
  const files = Object.values(loaded).flatMap((l) => l.files);
  switch (name) {
    case "mmlu":
      return {
        name,
        items: mmluItems(loaded.dev!.records, loaded.test!.records, 5, {
          dev: loaded.dev!.where,
          test: loaded.test!.where,
        }),
        files,
      };
    case "drop": {
      const d = dropItems(loaded.validation!.records, 3, loaded.validation!.where);
      return {
        name,
        items: d.items,
        files,
        notes: { drop_filtered_multi_answer: d.filtered, drop_examples: d.train },
      };
    }
    case "humaneval":
      return { name, items: humanevalItems(loaded.test!.records, loaded.test!.where), files };
  }
}
