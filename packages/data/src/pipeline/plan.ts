/**
 * The plan: the sorted input files of every source, grouped into tasks, and the stages to run.
 * It is computed once and written to <work>/plan.json; every task of every stage (local
 * processes or Slurm array jobs) reads the same plan, so task i means the same files
 * everywhere. Sorting then chunking (no per-rank shuffle) avoids the reference's bug of ranks
 * reading overlapping files.
 */
import { createHash } from "node:crypto";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeAtomic } from "../dedup/files.js";
import {
  type HubOptions,
  hubOptionsFromEnv,
  listHubFiles,
  resolveHubRevision,
} from "../hub/hub.js";
import { listInputFiles, matchAny, type SkippedEntry } from "../io/glob.js";
import { MANIFEST_FILE } from "../shards/manifest.js";
import { getSource, type SourceDefinition } from "../sources/index.js";
import type { PrepareConfig } from "./config.js";

export interface PlannedFile {
  /** Path relative to the dataset root (the hub path). */
  path: string;
  size: number;
  /**
   * Local inputs: the modification time when the run was planned. A resumed run whose local
   * files were added, removed, resized or modified since is refused (see inputChanges), and a
   * task refuses to read a file whose size or time is not the planned one (read-docs.ts), so
   * one output never mixes two versions of the input. Absent in plans of earlier versions.
   */
  mtimeMs?: number;
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
  /**
   * definitionHash() of the source definition (src/sources/) the plan was made with: a run
   * resumed after the definition changed (text field, subsets, meta(), drop()...) would mix
   * tasks read under the old and the new one. Absent in plans of earlier versions.
   */
  definition?: string;
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

/**
 * What of a source definition decides which files are read and what becomes of their records,
 * hashed: the fields, and the text of meta() and drop() (code edits to either change it).
 */
export function definitionHash(def: SourceDefinition): string {
  const { meta, drop, ...fields } = def;
  const text = JSON.stringify({ ...fields, meta: String(meta), drop: drop ? String(drop) : null });
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/**
 * The settings that differ between two configs, for the message refusing a plan made with
 * another one: "validationFraction: 0.05 -> 0.1", "sources: added proof-pile-2".
 */
export function describeConfigChange(before: PrepareConfig, after: PrepareConfig): string {
  const changes: string[] = [];
  const leaves = (v: unknown, at: string, out: Map<string, string>) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) leaves(x, at ? `${at}.${k}` : k, out);
    } else if (v !== undefined) out.set(at, JSON.stringify(v));
    return out;
  };
  const diff = (a: unknown, b: unknown, at: string) => {
    const la = leaves(a, at, new Map());
    const lb = leaves(b, at, new Map());
    for (const k of new Set([...la.keys(), ...lb.keys()]))
      if (la.get(k) !== lb.get(k))
        changes.push(`${k}: ${la.get(k) ?? "(unset)"} -> ${lb.get(k) ?? "(unset)"}`);
  };
  const { slurm: _sa, sources: sa, ...ra } = before;
  const { slurm: _sb, sources: sb, ...rb } = after;
  const na = sa.map((s) => s.name);
  const nb = sb.map((s) => s.name);
  const added = nb.filter((n) => !na.includes(n));
  const removed = na.filter((n) => !nb.includes(n));
  if (added.length > 0) changes.push(`sources: added ${added.join(", ")}`);
  if (removed.length > 0) changes.push(`sources: removed ${removed.join(", ")}`);
  const common = (ns: string[]) => ns.filter((n) => na.includes(n) && nb.includes(n)).join(", ");
  if (common(na) !== common(nb))
    changes.push(`sources: order ${common(na)} -> ${common(nb)} (dedup keeps the earlier copy)`);
  for (const s of sa)
    if (nb.includes(s.name))
      diff(
        s,
        sb.find((t) => t.name === s.name),
        `sources[${s.name}]`,
      );
  diff(ra, rb, "");
  if (changes.length === 0) return "";
  const shown = changes.slice(0, 6).join(", ");
  return changes.length > 6 ? `${shown}, and ${changes.length - 6} more` : shown;
}

/**
 * How the local inputs of a plan differ from what the same sources list now (files added,
 * removed, resized or modified), or undefined when they are the planned ones. Hub sources are
 * pinned to a commit and not listed again.
 */
export async function inputChanges(plan: Plan, hub?: HubOptions): Promise<string | undefined> {
  const found: string[] = [];
  for (const [i, input] of plan.config.sources.entries()) {
    if (!input.local) continue;
    const planned = new Map(
      plan.tasks
        .filter((t) => t.source === input.name)
        .flatMap((t) => t.files.map((f) => [f.path, f])),
    );
    let now: PlannedFile[];
    try {
      now = (await listSourceFiles(plan.config, i, hub)).files;
    } catch (err) {
      found.push(`source ${input.name}: ${(err as Error).message}`);
      continue;
    }
    const added = now.filter((f) => !planned.has(f.path)).map((f) => f.path);
    const listed = new Set(now.map((f) => f.path));
    const removed = [...planned.keys()].filter((p) => !listed.has(p));
    const changed = now.flatMap((f) => {
      const p = planned.get(f.path);
      if (!p) return [];
      if (p.size !== f.size) return [`${f.path} (${p.size} -> ${f.size} bytes)`];
      if (p.mtimeMs !== undefined && p.mtimeMs !== f.mtimeMs) return [`${f.path} (modified)`];
      return [];
    });
    const list = (what: string, xs: string[]) =>
      xs.length === 0
        ? []
        : [
            `${xs.length} ${what}: ${xs.slice(0, 3).join(", ")}${xs.length > 3 ? `, and ${xs.length - 3} more` : ""}`,
          ];
    const parts = [
      ...list("added", added),
      ...list("removed", removed),
      ...list("changed", changed),
    ];
    if (parts.length > 0) found.push(`source ${input.name} (${input.local}): ${parts.join("; ")}`);
  }
  return found.length > 0 ? found.join("; ") : undefined;
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
  const source: PlannedSource = { name: input.name, definition: definitionHash(def) };
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
      picked.map(async (p) => {
        const st = await stat(join(root, p));
        return { path: p, size: st.size, mtimeMs: st.mtimeMs };
      }),
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
 * tasks), or makes and writes a new one. A plan for another config, of another format
 * version, made with another source definition, or whose local input files changed since, is a
 * StalePlanError naming what changed: mixing them would mix outputs. With `restartStale` (the
 * bundled sample's default output, which holds nothing but what the sample makes) the stale
 * work directory is removed and a new plan made instead; finalize then removes the old shards.
 *
 * Before a new plan is written, the output's source directories it will fill lose their
 * manifest.json (finalize writes the new one; until then a reader finds no manifest rather than
 * the old one over files the new run rewrites), and directories of sources this config no longer
 * lists, made through the same work directory, are refused: their shards were deduplicated
 * against the other sources of the earlier run.
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
  let stale: { reason: string; advice: string } | undefined;
  let resumable: Plan | undefined;
  const startOver = `remove ${workDir} to start over (the new run replaces the shards of this output's sources)`;
  if (existing) {
    const plan = JSON.parse(existing) as Plan;
    if (plan.version !== PLAN_VERSION) {
      stale = {
        reason: `${path} was made by another version of @tinyllama/data (plan version ${plan.version}, this one writes ${PLAN_VERSION}), whose intermediate files cannot be mixed with this version's`,
        advice: startOver,
      };
    } else if (plan.configHash !== configHash(config)) {
      const changed = describeConfigChange(plan.config, config);
      const dropped = plan.config.sources
        .filter((s) => !config.sources.some((t) => t.name === s.name))
        .map((s) => join(plan.config.output, s.name));
      stale = {
        reason: `${path} belongs to a run with another config${changed ? ` (${changed})` : ""}`,
        advice: `to use the new settings, ${startOver}${dropped.length > 0 ? ` and ${dropped.join(", ")}, whose source the new config does not list` : ""}, or choose another output directory; to finish the earlier run, rerun it with its config (recorded in ${path})`,
      };
    } else if (unpinnedHubSource(plan)) {
      const branch = unpinnedHubSource(plan)?.hub?.revision ?? "main";
      stale = {
        reason: `${path} was made before hub inputs were pinned to a commit: its downloads name only "${branch}", which may have moved since`,
        advice: startOver,
      };
    } else {
      const redefined = (plan.sources ?? []).filter(
        (s) => s.definition !== undefined && s.definition !== definitionHash(getSource(s.name)),
      );
      const inputs = redefined.length > 0 ? undefined : await inputChanges(plan, hub);
      if (redefined.length > 0)
        stale = {
          reason: `${path} was made with another definition of source ${redefined.map((s) => s.name).join(", ")} (src/sources/: fields, subsets, meta() or drop() changed since)`,
          advice: startOver,
        };
      else if (inputs)
        stale = {
          reason: `the local input files changed since ${path} was made: ${inputs}`,
          advice: `a run reads only the files it planned, as they were; to prepare the files as they are now, ${startOver}; or restore the planned files to finish the earlier run`,
        };
      else resumable = withSources(plan);
    }
  }
  if (stale && !opts.restartStale) throw new StalePlanError(`${stale.reason}; ${stale.advice}`);
  if (resumable) {
    await retireManifests(resumable);
    return { plan: resumable, resumed: true };
  }
  await refuseForeignSourceDirs(config);
  if (stale) {
    restarted = stale.reason;
    await rm(workDir, { recursive: true, force: true });
  }
  const plan = await makePlan(config, hub);
  await retireManifests(plan);
  await writeAtomic(path, JSON.stringify(plan, null, 1));
  return { plan, resumed: false, ...(restarted ? { restarted } : {}) };
}

/**
 * Removes the manifest.json of every source of the plan whose finalize task is not done: it
 * belongs to an earlier run (another config, or files this run is rewriting), and a trainer
 * opening it would read the new run's files under the old manifest. Finalize writes the new one.
 */
async function retireManifests(plan: Plan): Promise<void> {
  for (const [i, s] of plan.config.sources.entries()) {
    const done = await stat(join(plan.workDir, "done", "finalize", `${i}`)).then(
      () => true,
      () => false,
    );
    if (!done) await rm(join(plan.config.output, s.name, MANIFEST_FILE), { force: true });
  }
}

/**
 * Source directories of the output that an earlier run through the same work directory made,
 * for sources this config does not list: a StalePlanError naming them. Their shards were
 * deduplicated against that run's sources (a copy kept in one source is removed from the
 * others), so next to this run's they would repeat or lack documents. Directories made through
 * another work directory (a separate run into the same output) are left alone.
 */
async function refuseForeignSourceDirs(config: PrepareConfig): Promise<void> {
  const names = new Set(config.sources.map((s) => s.name));
  const entries = await readdir(config.output, { withFileTypes: true }).catch(() => []);
  const foreign: string[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || names.has(e.name)) continue;
    const text = await readFile(join(config.output, e.name, MANIFEST_FILE), "utf8").catch(
      () => undefined,
    );
    if (text === undefined) continue;
    let made: Partial<PrepareConfig> | undefined;
    try {
      made = (JSON.parse(text) as { config?: Partial<PrepareConfig> }).config;
    } catch {
      continue;
    }
    if (!made || typeof made.output !== "string") continue;
    const sameWork =
      made.workDir === undefined
        ? config.workDir === undefined
        : made.workDir === workDirOf(config);
    if (sameWork) foreign.push(join(config.output, e.name));
  }
  if (foreign.length > 0)
    throw new StalePlanError(
      `${foreign.join(", ")} ${foreign.length > 1 ? "hold shards" : "holds the shards"} of an earlier run into this output of a source this config does not list; ` +
        "they were deduplicated against that run's sources and would be mixed with this run's shards: " +
        `remove ${foreign.length > 1 ? "them" : "it"}, or choose another output directory`,
    );
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
