/**
 * The plan: the sorted input files of every source, grouped into tasks, and the stages to run.
 * It is computed once and written to <work>/plan.json; every task of every stage (local
 * processes or Slurm array jobs) reads the same plan, so task i means the same files
 * everywhere. Sorting then chunking (no per-rank shuffle) avoids the reference's bug of ranks
 * reading overlapping files.
 */
import { createHash } from "node:crypto";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeAtomic } from "../dedup/files.js";
import {
  type HubOptions,
  hubOptionsFromEnv,
  listHubFiles,
  resolveHubRevision,
} from "../hub/hub.js";
import { listInputFiles, matchAny, type SkippedEntry } from "../io/glob.js";
import { getSource } from "../sources/index.js";
import type { PrepareConfig } from "./config.js";

export interface PlannedFile {
  /** Path relative to the dataset root (the hub path). */
  path: string;
  size: number;
}

export interface PlannedTask {
  /** Global task index (the rank within the per-task stages). */
  index: number;
  source: string;
  files: PlannedFile[];
}

/** What the plan fixed about one source's inputs, beyond the config. */
export interface PlannedSource {
  name: string;
  /**
   * Hub inputs: the repo, the revision the config asked for, and the commit it named when the
   * plan was made. Every download asks for that commit, so a run resumed after the dataset
   * changed upstream still reads the files (and sizes) it planned.
   */
  hub?: { repo: string; revision: string; commit: string };
  /**
   * Local inputs: entries under the root that are neither a file nor a folder nor a link to
   * one (broken links, fifos, link loops), left out of the listing and reported.
   */
  skipped?: SkippedEntry[];
}

export type StageName = "signatures" | "buckets" | "cluster" | "pack" | "finalize";

/**
 * The plan format, bumped whenever files a resumed run would mix change meaning. 2 (2026-11-28):
 * MinHash signatures with rolling polynomial shingles and a cheaper exact key, whose band keys
 * cannot be compared with version 1's.
 */
export const PLAN_VERSION = 2;

export interface Plan {
  version: typeof PLAN_VERSION;
  configHash: string;
  config: PrepareConfig;
  workDir: string;
  /** Per source, in config order: the pinned hub commit or the skipped local entries. */
  sources: PlannedSource[];
  tasks: PlannedTask[];
  /** Stages in order with their task counts. */
  stages: { name: StageName; tasks: number }[];
}

export function workDirOf(config: PrepareConfig): string {
  return config.workDir ?? join(config.output, ".work");
}

/** Hash of the settings that change outputs (sbatch settings do not). */
export function configHash(config: PrepareConfig): string {
  const { slurm: _slurm, ...rest } = config;
  return createHash("sha256").update(JSON.stringify(rest)).digest("hex").slice(0, 16);
}

export interface SourceListing {
  files: PlannedFile[];
  source: PlannedSource;
}

export async function listSourceFiles(
  config: PrepareConfig,
  sourceIndex: number,
  hub: HubOptions = hubOptionsFromEnv(),
): Promise<SourceListing> {
  const input = config.sources[sourceIndex];
  if (!input) throw new Error(`no source #${sourceIndex}`);
  const def = getSource(input.name);
  const globs = (input.subsets ?? def.defaultSubsets).flatMap((s) => def.subsets[s] ?? []);
  const source: PlannedSource = { name: input.name };
  let files: PlannedFile[];
  if (input.local) {
    const root = input.local;
    let listing: Awaited<ReturnType<typeof listInputFiles>>;
    try {
      listing = await listInputFiles(root);
    } catch (err) {
      throw new Error(`source ${input.name}: cannot list ${root}: ${(err as Error).message}`);
    }
    source.skipped = listing.skipped;
    const picked = listing.files.filter((p) => matchAny(p, globs));
    files = await Promise.all(
      picked.map(async (p) => ({ path: p, size: (await stat(join(root, p))).size })),
    );
  } else {
    const repo = input.hub?.repo ?? def.hubRepo;
    const revision = input.hub?.revision ?? "main";
    // list at the commit the revision names now, and keep that commit for every download
    const commit = await resolveHubRevision(repo, revision, hub);
    source.hub = { repo, revision, commit };
    files = await listHubFiles(repo, globs, { ...hub, revision: commit });
  }
  if (files.length === 0) {
    const skipped = source.skipped ?? [];
    throw new Error(
      `source ${input.name}: no input files match ${globs.join(", ")} under ${input.local ?? input.hub?.repo ?? def.hubRepo}` +
        (skipped.length > 0
          ? ` (${skipped.length} entries left out: ${describeSkipped(skipped, 5)})`
          : ""),
    );
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files: input.maxFiles ? files.slice(0, input.maxFiles) : files, source };
}

/** "a (broken symbolic link), b (a fifo), and 3 more": the first `max` skipped entries. */
export function describeSkipped(skipped: readonly SkippedEntry[], max = 10): string {
  const shown = skipped.slice(0, max).map((e) => `${e.path} (${e.reason})`);
  return skipped.length > max
    ? `${shown.join(", ")}, and ${skipped.length - max} more`
    : shown.join(", ");
}

export async function makePlan(config: PrepareConfig, hub?: HubOptions): Promise<Plan> {
  const tasks: PlannedTask[] = [];
  const sources: PlannedSource[] = [];
  for (let s = 0; s < config.sources.length; s++) {
    const { files, source } = await listSourceFiles(config, s, hub);
    sources.push(source);
    for (let i = 0; i < files.length; i += config.filesPerTask) {
      tasks.push({
        index: tasks.length,
        source: config.sources[s]?.name as string,
        files: files.slice(i, i + config.filesPerTask),
      });
    }
  }
  const stages: Plan["stages"] = [];
  if (config.dedup.enabled) {
    stages.push({ name: "signatures", tasks: tasks.length });
    stages.push({ name: "buckets", tasks: config.dedup.minhash.bands + 1 });
    stages.push({ name: "cluster", tasks: 1 });
  }
  stages.push({ name: "pack", tasks: tasks.length });
  stages.push({ name: "finalize", tasks: config.sources.length });
  return {
    version: PLAN_VERSION,
    configHash: configHash(config),
    config,
    workDir: workDirOf(config),
    sources,
    tasks,
    stages,
  };
}

export function planPath(workDir: string): string {
  return join(workDir, "plan.json");
}

/** An existing plan that this run cannot resume: another format version or another config. */
export class StalePlanError extends Error {
  override name = "StalePlanError";
}

/**
 * Loads the plan of an earlier run of the same config (so a rerun resumes with identical
 * tasks), or makes and writes a new one. A plan for another config or of another format
 * version is a StalePlanError: mixing them would mix outputs. With `restartStale` (the bundled
 * sample's default output, which holds nothing but what the sample makes) the stale work
 * directory is removed and a new plan made instead; finalize then removes the old shards.
 */
export async function loadOrMakePlan(
  config: PrepareConfig,
  hub?: HubOptions,
  opts: { restartStale?: boolean } = {},
): Promise<{ plan: Plan; resumed: boolean; restarted?: string }> {
  const workDir = workDirOf(config);
  const path = planPath(workDir);
  const existing = await readFile(path, "utf8").catch(() => undefined);
  let restarted: string | undefined;
  if (existing) {
    const plan = JSON.parse(existing) as Plan;
    let reason: string;
    let advice: string;
    if (plan.version !== PLAN_VERSION) {
      reason = `${path} was made by another version of @tinyllama/data (plan version ${plan.version}, this one writes ${PLAN_VERSION}), whose intermediate files cannot be mixed with this version's`;
      advice = `remove ${workDir} (and the shards it produced) to start over`;
    } else if (plan.configHash !== configHash(config)) {
      reason = `${path} belongs to a run with another config`;
      advice = `remove ${workDir} (and the shards it produced) or choose another output directory`;
    } else if (unpinnedHubSource(plan)) {
      const branch = unpinnedHubSource(plan)?.hub?.revision ?? "main";
      reason = `${path} was made before hub inputs were pinned to a commit: its downloads name only "${branch}", which may have moved since`;
      advice = `remove ${workDir} (and the shards it produced) to start over`;
    } else return { plan: withSources(plan), resumed: true };
    if (!opts.restartStale) throw new StalePlanError(`${reason}; ${advice}`);
    restarted = reason;
    await rm(workDir, { recursive: true, force: true });
  }
  const plan = await makePlan(config, hub);
  await writeAtomic(path, JSON.stringify(plan, null, 1));
  return { plan, resumed: false, ...(restarted ? { restarted } : {}) };
}

/**
 * The plan a task runs (task.js: one Slurm array element or local worker). A plan of another
 * format version is refused here too: a job array left queued across an upgrade must not mix
 * the two versions' intermediate files.
 */
export async function readPlan(path: string): Promise<Plan> {
  const plan = JSON.parse(await readFile(path, "utf8")) as Plan;
  if (plan.version !== PLAN_VERSION)
    throw new StalePlanError(
      `${path} was made by another version of @tinyllama/data (plan version ${plan.version}, this one runs ${PLAN_VERSION}); rerun data:prepare with this version to start over`,
    );
  return withSources(plan);
}

/**
 * A plan written before plans recorded `sources` (only local sources get this far: a hub one
 * is stale, see unpinnedHubSource) resumes with one empty entry per source: nothing was pinned
 * and nothing was recorded as skipped then.
 */
function withSources(plan: Plan): Plan {
  if (Array.isArray(plan.sources)) return plan;
  return { ...plan, sources: plan.config.sources.map((s) => ({ name: s.name })) };
}

/**
 * A hub source of a plan written before plans recorded `sources` (same format version
 * otherwise): its files were listed at whatever the branch named then, and resuming would
 * download whatever it names now. Local sources of such a plan resume as before.
 */
function unpinnedHubSource(plan: Plan): PrepareConfig["sources"][number] | undefined {
  if (Array.isArray(plan.sources)) return undefined;
  return plan.config.sources.find((s) => s.hub !== undefined);
}

/** The planned facts of source `name`; a hub source must have its pinned commit. */
export function plannedSource(plan: Plan, name: string): PlannedSource {
  const planned = plan.sources?.find((s) => s.name === name);
  const input = plan.config.sources.find((s) => s.name === name);
  if (!input) throw new Error(`plan names unknown source ${name}`);
  if (input.hub && !planned?.hub?.commit)
    throw new StalePlanError(
      `${join(plan.workDir, "plan.json")}: hub source ${name} has no pinned commit (the plan predates commit pinning); remove ${plan.workDir} (and the shards it produced) and rerun data:prepare`,
    );
  return planned ?? { name };
}
