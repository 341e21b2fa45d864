#!/usr/bin/env node
/**
 * Runs tasks of one stage: `task.js --plan <work>/plan.json --stage <name> [--rank N | --ranks a,b]`.
 * Without --rank(s) the rank comes from SLURM_ARRAY_TASK_ID (Slurm job arrays).
 */
import { parseArgs } from "node:util";
import { describeTask, runRanks } from "../executors/local.js";
import { readPlan, type StageName } from "../pipeline/plan.js";

/** The task that was running when one failed: an array element may run several. */
let failed: string | undefined;
const { values } = parseArgs({
  options: {
    plan: { type: "string" },
    stage: { type: "string" },
    rank: { type: "string" },
    ranks: { type: "string" },
    "ranks-per-element": { type: "string" },
  },
});
try {
  if (!values.plan || !values.stage)
    throw new Error("usage: task.js --plan <plan.json> --stage <stage> [--rank N | --ranks a,b,c]");
  const plan = await readPlan(values.plan);
  const stage = plan.stages.find((s) => s.name === values.stage);
  if (!stage)
    throw new Error(
      `stage ${values.stage} is not in the plan (has: ${plan.stages.map((s) => s.name).join(", ")})`,
    );
  const rankText = values.ranks ?? values.rank ?? (process.env.SLURM_ARRAY_TASK_ID || undefined);
  if (rankText === undefined)
    throw new Error(
      "no rank: pass --rank/--ranks or run as a Slurm array job (SLURM_ARRAY_TASK_ID)",
    );
  let ranks = rankText.split(",").map(Number);
  // Slurm arrays larger than MaxArraySize: element i runs ranks [i*k, (i+1)*k)
  const perElement = Number(values["ranks-per-element"] ?? 1);
  if (!Number.isInteger(perElement) || perElement < 1)
    throw new Error(`--ranks-per-element must be a positive integer`);
  if (perElement > 1) {
    const first = (ranks[0] ?? 0) * perElement;
    ranks = Array.from(
      { length: Math.max(0, Math.min(perElement, stage.tasks - first)) },
      (_, i) => first + i,
    );
  }
  for (const r of ranks) {
    if (!Number.isInteger(r) || r < 0 || r >= stage.tasks)
      throw new Error(`rank ${r} out of range [0, ${stage.tasks}) for stage ${stage.name}`);
  }
  // a Slurm log holds a whole element's ranks: a failure names its task and those not run
  await runRanks(plan, stage.name as StageName, ranks, (r) => {
    const rest = ranks.slice(ranks.indexOf(r) + 1);
    failed = `${describeTask(plan, stage.name, r)} failed${rest.length ? ` (not run: tasks ${rest.join(",")})` : ""}`;
  });
} catch (err) {
  console.error(
    `task ${values.stage ?? "?"}: ${failed ? `${failed}: ` : ""}${(err as Error).message}`,
  );
  process.exit(1);
}
