/**
 * Slurm executor: writes one sbatch script per stage (a job array over the stage's tasks,
 * `afterok` on the previous stage) and a submit.sh that chains them with `sbatch --parsable`.
 * Each array element runs `node cli/task.js --plan <plan> --stage <s>`, which takes its rank
 * from SLURM_ARRAY_TASK_ID; finished tasks leave markers, so resubmitting resumes.
 */
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { writeAtomic } from "../dedup/files.js";
import { type Plan, planPath, type StageName } from "../pipeline/plan.js";
import { defaultTaskScript } from "./local.js";

/** sbatch resources, for every stage or (under `stages`) for one. */
export interface SlurmResources {
  partition?: string;
  /** sbatch --time per array element, e.g. "04:00:00". */
  time?: string;
  cpusPerTask?: number;
  memPerCpu?: string;
}

export interface SlurmOptions extends SlurmResources {
  /**
   * Per-stage overrides of the resources above, e.g. `{ cluster: { memPerCpu: "64G",
   * time: "12:00:00" } }`: the single cluster task holds every duplicate pair of the run and
   * may need far more memory and time than a signatures or pack task.
   */
  stages?: Partial<Record<StageName, SlurmResources>>;
  /** Max array elements running at once (the %N suffix). */
  maxConcurrent?: number;
  /**
   * Most array elements per job (Slurm's MaxArraySize is 1001 by default). A stage with more
   * tasks gives each element a contiguous run of ranks: element i runs [i*k, (i+1)*k).
   */
  maxArraySize?: number;
  /** Extra #SBATCH lines. */
  extra?: string[];
  nodeBinary?: string;
  taskScript?: string;
}

export interface SlurmScripts {
  dir: string;
  stages: { stage: string; script: string; tasks: number; arrayElements: number }[];
  submit: string;
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * One argument of an `#SBATCH` line. sbatch splits those lines at whitespace itself (no shell
 * involved), honours "..." and backslash escapes, and takes an unquoted `#` as the start of a
 * comment: `--output=/scratch/my run/x.log` would be two arguments.
 */
const sbatchArg = (s: string) => `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
/** A literal path in an sbatch filename pattern: `%` starts a replacement (`%u`, `%j`, `%5a`). */
const patternLiteral = (s: string) => s.replaceAll("%", "%%");
/** An `extra` entry, with or without its own `#SBATCH` (`#SBATCH #SBATCH ...` is a comment). */
const extraLine = (l: string) => `#SBATCH ${l.trim().replace(/^#SBATCH\s+/, "")}`;

export async function writeSlurmScripts(plan: Plan, o: SlurmOptions = {}): Promise<SlurmScripts> {
  const dir = join(plan.workDir, "slurm");
  const node = o.nodeBinary ?? process.execPath;
  const script = o.taskScript ?? defaultTaskScript();
  const stages: SlurmScripts["stages"] = [];
  for (const stage of plan.stages) {
    const maxArray = o.maxArraySize ?? 1000;
    const perElement = Math.ceil(stage.tasks / maxArray);
    const elements = Math.ceil(stage.tasks / perElement);
    const r: SlurmResources = { ...o, ...o.stages?.[stage.name] };
    const lines = [
      "#!/bin/bash",
      `#SBATCH --job-name=tinyllama-${stage.name}`,
      `#SBATCH --array=0-${elements - 1}${o.maxConcurrent ? `%${o.maxConcurrent}` : ""}`,
      `#SBATCH --cpus-per-task=${r.cpusPerTask ?? 1}`,
      `#SBATCH --output=${sbatchArg(`${patternLiteral(join(dir, "logs"))}/${stage.name}-%A_%a.log`)}`,
      ...(r.partition ? [`#SBATCH --partition=${r.partition}`] : []),
      ...(r.time ? [`#SBATCH --time=${r.time}`] : []),
      ...(r.memPerCpu ? [`#SBATCH --mem-per-cpu=${r.memPerCpu}`] : []),
      ...(o.extra ?? []).map(extraLine),
      "set -euo pipefail",
      `exec ${q(node)} ${q(script)} --plan ${q(planPath(plan.workDir))} --stage ${stage.name}${perElement > 1 ? ` --ranks-per-element ${perElement}` : ""}`,
      "",
    ];
    const path = join(dir, `${String(stages.length).padStart(2, "0")}-${stage.name}.sbatch`);
    await writeAtomic(path, lines.join("\n"));
    stages.push({ stage: stage.name, script: path, tasks: stage.tasks, arrayElements: elements });
  }
  const jobs = join(dir, "jobs");
  // Plain POSIX sh in a bash script, no arrays: `"${dep[@]}"` of an empty array under `set -u`
  // aborts with "dep[@]: unbound variable" on bash < 4.4 (the RHEL/CentOS 7 login nodes
  // many clusters still run), before the first sbatch. The tests run it under dash too.
  const submit = [
    "#!/bin/bash",
    "# Submits every stage as a job array, each depending on the previous one (afterok).",
    "# A dependent array is cancelled when a task it waits on fails (--kill-on-invalid-dep),",
    "# rather than pending forever; after a failure fix its cause (logs/) and run this again:",
    "# finished tasks have markers and exit at once, the rest run.",
    "set -eu",
    `mkdir -p ${q(join(dir, "logs"))}`,
    // a second chain beside a queued one would run every task twice, concurrently
    `if [ -s ${q(jobs)} ] && command -v squeue >/dev/null 2>&1; then`,
    `  queued=$(squeue -h -o %i -j "$(paste -sd, ${q(jobs)})" 2>/dev/null || true)`,
    '  if [ -n "$queued" ]; then',
    `    echo "jobs of an earlier submit are still queued or running: $(paste -sd' ' ${q(jobs)})" >&2`,
    '    echo "wait for them, or cancel them (scancel <ids>) and run this again" >&2',
    "    exit 1",
    "  fi",
    "fi",
    `: > ${q(jobs)}`,
    "dep=",
    ...stages.flatMap((s) => [
      // $dep unquoted on purpose: empty for the first stage, else two words (no spaces inside)
      `id=$(sbatch --parsable $dep ${q(s.script)})`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not JS
      "id=${id%%;*}",
      `echo "$id" >> ${q(jobs)}`,
      `echo "${s.stage}: job $id (${s.tasks} tasks)"`,
      'dep="--dependency=afterok:$id --kill-on-invalid-dep=yes"',
    ]),
    "",
  ].join("\n");
  const submitPath = join(dir, "submit.sh");
  await writeAtomic(submitPath, submit);
  await chmod(submitPath, 0o755);
  return { dir, stages, submit: submitPath };
}
