/**
 * Slurm executor: writes one sbatch script per stage (a job array over the stage's tasks,
 * `afterok` on the previous stage) and a submit.sh that chains them with `sbatch --parsable`.
 * Each array element runs `node cli/task.js --plan <plan> --stage <s>`, which takes its rank
 * from SLURM_ARRAY_TASK_ID; finished tasks leave markers, so resubmitting resumes.
 */
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { writeAtomic } from "../dedup/files.js";
import { type Plan, planPath } from "../pipeline/plan.js";
import { defaultTaskScript } from "./local.js";

export interface SlurmOptions {
  partition?: string;
  /** sbatch --time per array element, e.g. "04:00:00". */
  time?: string;
  cpusPerTask?: number;
  memPerCpu?: string;
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

export async function writeSlurmScripts(plan: Plan, o: SlurmOptions = {}): Promise<SlurmScripts> {
  const dir = join(plan.workDir, "slurm");
  const node = o.nodeBinary ?? process.execPath;
  const script = o.taskScript ?? defaultTaskScript();
  const stages: SlurmScripts["stages"] = [];
  for (const stage of plan.stages) {
    const maxArray = o.maxArraySize ?? 1000;
    const perElement = Math.ceil(stage.tasks / maxArray);
    const elements = Math.ceil(stage.tasks / perElement);
    const lines = [
      "#!/bin/bash",
      `#SBATCH --job-name=tinyllama-${stage.name}`,
      `#SBATCH --array=0-${elements - 1}${o.maxConcurrent ? `%${o.maxConcurrent}` : ""}`,
      `#SBATCH --cpus-per-task=${o.cpusPerTask ?? 1}`,
      `#SBATCH --output=${join(dir, "logs", `${stage.name}-%A_%a.log`)}`,
      ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
      ...(o.time ? [`#SBATCH --time=${o.time}`] : []),
      ...(o.memPerCpu ? [`#SBATCH --mem-per-cpu=${o.memPerCpu}`] : []),
      ...(o.extra ?? []).map((l) => `#SBATCH ${l}`),
      "set -euo pipefail",
      `exec ${q(node)} ${q(script)} --plan ${q(planPath(plan.workDir))} --stage ${stage.name}${perElement > 1 ? ` --ranks-per-element ${perElement}` : ""}`,
      "",
    ];
    const path = join(dir, `${String(stages.length).padStart(2, "0")}-${stage.name}.sbatch`);
    await writeAtomic(path, lines.join("\n"));
    stages.push({ stage: stage.name, script: path, tasks: stage.tasks, arrayElements: elements });
  }
  const submit = [
    "#!/bin/bash",
    "# Submits every stage as a job array, each depending on the previous one (afterok).",
    "set -euo pipefail",
    `mkdir -p ${q(join(dir, "logs"))}`,
    "dep=()",
    ...stages.flatMap((s) => [
      `id=$(sbatch --parsable "\${dep[@]}" ${q(s.script)})`,
      `echo "${s.stage}: job $id (${s.tasks} tasks)"`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansion, not JS
      'dep=(--dependency=afterok:"${id%%;*}")',
    ]),
    "",
  ].join("\n");
  const submitPath = join(dir, "submit.sh");
  await writeAtomic(submitPath, submit);
  await chmod(submitPath, 0o755);
  return { dir, stages, submit: submitPath };
}
